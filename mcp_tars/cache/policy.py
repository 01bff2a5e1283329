"""Cache policy: what may be cached (temperature, truncated or tool-use
answers), the query type that sets an answer's time to live, and the text of
a request's last user message."""

from __future__ import annotations

import re
from typing import Iterable

from ..settings import CacheSettings
from .lexicon import TECH_NAMES


_CODE_HINT = re.compile(
    r"```|`[^`]+`|\b(?:function|method|class|regex|regexp|compile[rd]?|syntax|snippet|stack ?trace|"
    r"exception|traceback|segfault|debug|refactor|implement|algorithm|array|dict(?:ionary)?|hashmap|"
    r"list comprehension|lambda|loop|recursion|api|endpoint|query|sql|script|library|package|module|"
    r"import|variable|string|integer|boolean|null|pointer|git|docker|npm|pip|cli|command line|terminal|"
    r"unit test|bug|error|code)\b|[A-Za-z_]+\(\)|\w+\.\w+\(",
    re.I,
)
_TEMPLATE_HINT = re.compile(
    r"\b(?:template|boilerplate|placeholder|fill in|form letter)\b|\{\{|\[(?:name|date|company|title)\]|"
    r"\b(?:write|draft|compose|create|generate|give me)\b(?:\s+\w+){0,3}\s+(?:e-?mail|letter|cover letter|"
    r"message|reply|response|invitation|announcement|bio|description|post|tweet|caption|thank[- ]you note|"
    r"memo|agenda|outline|resume|cv|proposal|job description|readme|commit message|release notes)\b",
    re.I,
)
_RESEARCH_HINT = re.compile(
    r"\b(?:research|analy[sz]e|analysis|compare|comparison|pros and cons|trade-?offs?|in-depth|"
    r"state of the art|literature|survey|trends?|latest|current(?:ly)?|recent(?:ly)?|today|news|"
    r"this (?:week|month|year)|right now|forecast|outlook|market|evaluate|investigate|report on|"
    r"weather|price of|stock)\b",
    re.I,
)
_FACT_HINT = re.compile(
    r"^\W*(?:what|who|when|where|which|how (?:many|much|old|tall|far|long|big|high|deep)|"
    r"define|definition|meaning|is|are|does|did|was|were|tell me (?:about|the))\b",
    re.I,
)


def detect_query_type(text: str) -> str:
    """research | fact_lookup | code_pattern | template | default, from the
    last user message. Time-sensitive questions count as research (shortest TTL)."""
    if not text or not text.strip():
        return "default"
    if _TEMPLATE_HINT.search(text):
        return "template"
    if _RESEARCH_HINT.search(text):
        return "research"
    if _CODE_HINT.search(text) or any(w in TECH_NAMES for w in re.findall(r"[\w+#.]+", text.casefold())
                                       if w not in ("go", "r", "c", "edge", "word", "rest", "arch", "spring", "less", "pixel", "excel", "unity", "fish", "bash")):
        return "code_pattern"
    if _FACT_HINT.search(text) and len(text) <= 300:
        return "fact_lookup"
    return "default"


def request_text(params: dict) -> str:
    """The text of the last user message (for type detection)."""
    messages = params.get("messages") or []
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(
                    str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"
                )
            return ""
    return ""


_INCOMPLETE_STOPS = {
    "max_tokens": "truncated answer (stop_reason max_tokens)",
    "model_context_window_exceeded": "truncated answer (stop_reason model_context_window_exceeded)",
    "pause_turn": "unfinished turn (stop_reason pause_turn)",
    "refusal": "refusal (stop_reason refusal)",
    "tool_use": "tool_use response (the caller must run the tool)",
}
_TOOL_BLOCKS = {"tool_use", "server_tool_use", "mcp_tool_use"}


def request_not_cacheable(params: dict, settings: CacheSettings) -> str | None:
    """Why this request may neither be served from nor stored in the cache, or None."""
    if not settings.enabled:
        return "cache disabled"
    if params.get("use_cache") is False:
        return "use_cache=false"
    if params.get("stream"):
        return None  # streaming does not change the answer; the engine decides what to do with it
    temperature = params.get("temperature")
    if (
        isinstance(temperature, (int, float))
        and temperature > settings.max_cacheable_temperature
        and not settings.cache_high_temperature
    ):
        return f"temperature {temperature} above max_cacheable_temperature {settings.max_cacheable_temperature}"
    if params.get("max_tokens") == 0:
        return "max_tokens 0 (a prompt-cache warm-up, no answer)"
    return None


def response_not_cacheable(response: dict) -> str | None:
    """Why this API answer must not be stored, or None."""
    if not isinstance(response, dict):
        return "response is not a dict"
    if response.get("type") == "error" or response.get("error"):
        return "error response"
    stop = response.get("stop_reason")
    if stop in _INCOMPLETE_STOPS:
        return _INCOMPLETE_STOPS[stop]
    content = response.get("content")
    if not isinstance(content, list) or not content:
        return "empty response"
    if any(isinstance(b, dict) and b.get("type") in _TOOL_BLOCKS for b in content):
        return _INCOMPLETE_STOPS["tool_use"]
    if not any(isinstance(b, dict) and b.get("type") == "text" and str(b.get("text", "")).strip() for b in content):
        return "no text in the response"
    return None


def response_text(content: Iterable[dict]) -> str:
    return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")


