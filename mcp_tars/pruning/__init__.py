"""Context pruning that keeps conversations valid, and keeps what the next turn needs.

``prune_messages`` shrinks a Messages API conversation towards a token target
(system prompt included):

1. Remove waste from the messages that stay (``trim``): repeated tool outputs
   and file contents (the latest copy stays), older versions of a file that is
   shown again later, the middle of oversized blocks (head and tail stay, with
   a marker saying how much was cut), old images and old thinking blocks,
   credential values.
2. Drop the oldest messages after the cached prefix, keeping the last N
   messages of the chosen level (light 20, medium 10, aggressive 3).
3. Summarise what was dropped (or cut) into the first kept user turn: the
   facts an agent needs later (``facts``), those the final user turn asks
   about first, or an abstractive summary from a caller-supplied function.

With level auto the order of what survives inside the target is: the final
user turn (verbatim), then the facts of the dropped history, then recent
messages (``pruner``). A level fits only when its summary gets its full
budget; past aggressive, the facts are reserved first and recent messages
fill what is left. When the system prompt and the final turn leave less room
than the facts need, the facts are kept anyway (up to
``facts_floor_tokens``): the result then misses the target, and ``notes``,
``target_met`` and ``breakdown`` say what took the room.

The result always passes ``validate_conversation``: it starts with a user
message, roles alternate, every tool_result answers a tool_use of the
message just before it (pairs are kept or removed together), the thinking
blocks of the final tool loop stay untouched, the system prompt is never
dropped, and it is never larger than the input. The final user turn (the
current request, or the latest tool results with the assistant turn they
answer) is what the model answers now: it is kept verbatim, every block as it
was, and nothing is added to it. The summary joins an earlier user message,
never the final one nor the user's current request. The first
``protected_prefix`` messages (already in the prompt cache) are never
modified, unless pruning inside them is cheaper even after paying to write
the cache again; that choice is explained in ``notes``.

Modules: ``validate`` (the API's rules), ``meter`` (token counts),
``history`` (the input analysed once), ``trim`` (waste removal), ``values``
(what a value is and weighs), ``question`` (what the turn answered now asks),
``facts`` (units of text, scored and chosen), ``summary`` (the summary text),
``pruner`` (assembling candidates and the auto strategy).
"""

from ..settings import LEVEL_NAMES, PruningSettings
from .meter import conversation_fingerprint
from .pruner import PruneResult, choose_level, extend_pruned, prune_messages
from .summary import Summarizer
from .validate import validate_conversation

__all__ = [
    "LEVEL_NAMES",
    "PruneResult",
    "PruningSettings",
    "Summarizer",
    "choose_level",
    "conversation_fingerprint",
    "extend_pruned",
    "prune_messages",
    "validate_conversation",
]
