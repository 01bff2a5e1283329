"""``python -m mcp_tars.sim``: run the simulated Anthropic API as its own process.

Writes the chosen port to ``--port-file`` once listening (atomically, so a
reader never sees a partial number), prints the base URL on stderr, and serves
until SIGTERM or Ctrl-C. Set ``MCP_TARS_CLOCK_FILE`` to share a simulated
clock with the processes under test.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .simulator import SimulatedAnthropic


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mcp_tars.sim", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the listening port here")
    parser.add_argument("--latency-s", type=float, default=0.0, help="added to every API request")
    parser.add_argument("--output-tokens-per-s", type=float, default=None, help="generation speed (default: instant)")
    parser.add_argument("--batch-ready-after-polls", type=int, default=0)
    parser.add_argument("--batch-error-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any non-empty key)")
    parser.add_argument("--prices", default=None, help="price table (default: the packaged prices.json)")
    parser.add_argument("--no-request-bodies", action="store_true", help="log requests without their bodies")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sim = SimulatedAnthropic(
        host=args.host,
        port=args.port,
        latency_s=args.latency_s,
        output_tokens_per_s=args.output_tokens_per_s,
        batch_ready_after_polls=args.batch_ready_after_polls,
        batch_error_rate=args.batch_error_rate,
        seed=args.seed,
        api_key=args.api_key,
        prices_path=args.prices,
        keep_request_bodies=not args.no_request_bodies,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    base_url = sim.start()
    try:
        if args.port_file:
            temporary = f"{args.port_file}.tmp"
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(f"{base_url.rsplit(':', 1)[1]}\n")
            os.replace(temporary, args.port_file)
        print(f"simulated Anthropic API listening on {base_url}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):  # a timed wait keeps signal delivery prompt
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
