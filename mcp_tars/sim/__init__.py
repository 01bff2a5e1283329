"""A simulated Anthropic API on loopback HTTP, for tests, the demo and benchmarks.

It speaks the real wire format well enough for the real ``anthropic`` SDK in
strict mode: Messages (plain and SSE streaming), count_tokens, and Message
Batches, with prompt caching, usage and billing as Anthropic reports them.

    from mcp_tars.sim import SimulatedAnthropic

    with SimulatedAnthropic(batch_ready_after_polls=1) as sim:
        client = anthropic.Anthropic(api_key="test", base_url=sim.base_url)
        ...
        sim.bill, sim.bill_total_usd(), sim.requests, sim.batches
        sim.inject_faults("529", count=2)

Run it as its own process with ``python -m mcp_tars.sim --port-file PATH``
and drive it through ``/_sim/*`` (see ``remote.RemoteSim``).

Where each rule lives: token counts in ``prompt.py`` / ``tokenizer.py``,
cache minimums and model ids in ``models.py``, prompt caching in
``prompt_cache.py``, prices in ``billing.py``, answers (and the ``q=`` tag) in
``answers.py``, batches in ``batches.py``, faults in ``faults.py``.
"""

from .answers import answer_tag
from .billing import BillLine
from .faults import FAULT_KINDS
from .remote import RemoteSim, SimProcess
from .simulator import SimRequest, SimulatedAnthropic

__all__ = [
    "FAULT_KINDS",
    "BillLine",
    "RemoteSim",
    "SimProcess",
    "SimRequest",
    "SimulatedAnthropic",
    "answer_tag",
]
