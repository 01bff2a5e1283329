"""The documents a newcomer reads match the code: every tool in the README's
table, a contributing guide without anyone's machine paths in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mcp import Client

from conftest import in_process_server, make_config

ROOT = Path(__file__).resolve().parent.parent
MACHINE_PATHS = re.compile(r"/(?:work|root|home|tmp|Users)/")


@pytest.mark.anyio
async def test_the_readme_tool_table_lists_every_tool(tmp_path):
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| tool | what it does |"):readme.index("**What the agent reads.**")]
    async with Client(in_process_server(make_config(), str(tmp_path / "d.db"))) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
    assert {"cancel_task", "deferred_results"} <= tools
    listed = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    assert listed == tools


def test_a_contributing_guide_replaces_the_internal_notes():
    assert not (ROOT / "docs" / "HELPERS.md").exists()
    guide = (ROOT / "CONTRIBUTING.md").read_text()
    for heading in ("## Set up", "## Run the tests", "## Benchmarks", "## Where things live", "## Conventions"):
        assert heading in guide
    for document in ("CONTRIBUTING.md", "README.md", "skills/performance-optimization/SKILL.md"):
        assert not MACHINE_PATHS.search((ROOT / document).read_text()), document
