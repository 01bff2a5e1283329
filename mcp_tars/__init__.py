"""mcp-tars: an MCP server that cuts what you pay for the Anthropic API."""

__version__ = "0.1.0"
