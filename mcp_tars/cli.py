"""The ``mcp-tars`` command: serve, report, demo, heartbeat, export, cache, db.

Like the MCP server, this is a thin edge over the engine and the store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from .config import ConfigError, config_path, load_config
from .engine import UpstreamError
from .store import StoreError

PERIODS = ("today", "yesterday", "7d", "30d", "month", "all")
GROUPS = ("model", "day", "strategy", "session")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcp-tars", description="An MCP server that cuts what you pay for the Anthropic API.")
    p.add_argument("--config", help="performance-config.json to use (default: $MCP_TARS_CONFIG or the packaged copy)")
    p.add_argument("--db", help="the database: a SQLite file path or a postgresql://user:password@host:port/database "
                                "URL (default: $MCP_TARS_DB, else a file in the per-user data directory)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the MCP server")
    s.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    s.add_argument("--host", default=None, help="HTTP bind address (default from the config: 127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="HTTP port (default from the config)")

    g = sub.add_parser("gateway", help="run the Anthropic-compatible gateway (point ANTHROPIC_BASE_URL at it)")
    g.add_argument("--host", default=None, help="bind address, loopback only (default from the config: 127.0.0.1)")
    g.add_argument("--port", type=int, default=None, help="port (default from the config: 8765)")

    r = sub.add_parser("report", help="print a cost report from the ledger")
    r.add_argument("--period", choices=PERIODS, default="today")
    r.add_argument("--group-by", choices=GROUPS, default="model")
    r.add_argument("--since", help="start date YYYY-MM-DD (UTC), overrides --period")
    r.add_argument("--until", help="end date YYYY-MM-DD (UTC, inclusive)")
    fmt = r.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the report as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print the Markdown report")
    fmt.add_argument("--html", metavar="FILE", help="write the HTML report with charts to FILE")

    d = sub.add_parser("demo", help="offline end-to-end run against the built-in simulated API")
    d.add_argument("--keep", metavar="DIR", help="keep the demo's database in DIR")

    h = sub.add_parser("heartbeat", help="one pass of deferred work plus the health checks (for cron or HEARTBEAT.md)")
    h.add_argument("--json", action="store_true")
    h.add_argument("--force", action="store_true", help="submit all queued deferred work now")

    e = sub.add_parser("export", help="write integration files")
    e.add_argument("what", choices=("costs-json",))
    e.add_argument("--output", "-o", default="costs.json")

    c = sub.add_parser("cache", help="manage the response cache")
    c.add_argument("action", choices=("clear", "stats", "purge-expired"))

    db = sub.add_parser("db", help="upgrade the database, or copy a history into another database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("migrate", help="apply the schema migrations the database lacks (serve does it on start too)")
    cp = db_sub.add_parser("copy", help="copy the ledger, alerts and sessions of SRC into DST (idempotent, exact)")
    cp.add_argument("src", help="the database to copy from: a SQLite file path or a postgresql:// URL")
    cp.add_argument("dst", help="the database to copy into (e.g. the team's postgresql:// URL)")

    cfg = sub.add_parser("config", help="check or print the configuration")
    cfg.add_argument("action", choices=("check", "show", "path", "reference"),
                     help="reference prints the Markdown table of every field (the README's)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("MCP_TARS_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.config:
        os.environ["MCP_TARS_CONFIG"] = args.config
    if args.db:
        os.environ["MCP_TARS_DB"] = args.db
    try:
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(keep_dir=args.keep)
        config = load_config()
        handler = {
            "serve": _serve, "gateway": _gateway, "report": _report, "heartbeat": _heartbeat, "export": _export,
            "cache": _cache, "db": _db, "config": _config,
        }[args.command]
        return handler(args, config) or 0
    except ConfigError as e:
        print(f"mcp-tars: {e}", file=sys.stderr)
        return 2
    except StoreError as e:
        print(f"mcp-tars: {e}", file=sys.stderr)
        return 3
    except UpstreamError as e:
        print(f"mcp-tars: {e}", file=sys.stderr)
        return 4
    except ValueError as e:
        print(f"mcp-tars: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `mcp-tars report | head`
        sys.stderr.close()
        return 0


def _open(config):
    from .app import open_state

    return open_state(config)


def _serve(args, config) -> int:
    from .server import create_server
    from .store import open_store

    # open (and migrate) the database before serving: a damaged, locked, newer or
    # unreachable database stops here with its message, not as a traceback inside the transport
    open_store().close()
    opened: dict = {}

    def open_once():
        opened["state"] = _open(config)
        return opened["state"]

    server = create_server(open_once)
    if args.transport == "stdio":
        from . import stdio

        stdio.run(server)
        return 0
    import uvicorn

    from .http_security import LOOPBACK_HOSTS, build_http_app

    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    app = build_http_app(server, config, host, port)
    if config.gateway.on_http_server and host in LOOPBACK_HOSTS:
        from .gateway import mount_gateway

        app = mount_gateway(app, lambda: opened["state"].engine)  # the MCP server's own engine and ledger
    uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="on")
    return 0


def _gateway(args, config) -> int:
    import uvicorn

    from .gateway import create_gateway
    from .http_security import LOOPBACK_HOSTS
    from .store import open_store
    from .upstream import api_base_url
    from urllib.parse import urlsplit

    host = args.host or config.gateway.host
    port = args.port if args.port is not None else config.gateway.port
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"refusing to run the gateway on {host}: it forwards its clients' API keys and tokens, "
                         "so it listens on loopback only (127.0.0.1, localhost or ::1)")
    upstream = urlsplit(api_base_url(config.gateway.upstream_base_url))
    if upstream.hostname in ("127.0.0.1", "localhost", "::1") and (upstream.port or 80) == port:
        raise ValueError(f"the gateway would send requests to itself ({upstream.geturl()}): ANTHROPIC_BASE_URL points at "
                         "the gateway in this shell. Unset it here, or set gateway.upstream_base_url in the config")
    open_store().close()  # a damaged, locked, newer or unreachable database stops here, with its message
    print(f"mcp-tars gateway on http://{host}:{port} -> {api_base_url(config.gateway.upstream_base_url)} "
          f"(set ANTHROPIC_BASE_URL=http://{host}:{port})", file=sys.stderr, flush=True)
    uvicorn.run(create_gateway(lambda: _open(config)), host=host, port=port, log_level="warning", lifespan="on")
    return 0


def _report(args, config) -> int:
    from rich.console import Console

    from . import reports
    from .budget import BudgetGuard
    from .engine import tenant_of
    from .store import open_store

    store = open_store()
    tenant = tenant_of(os.environ.get("ANTHROPIC_API_KEY"), config.tenant_namespace) if _tenant_scoped() else None
    budget = BudgetGuard(store, config.budget).status(tenant) if tenant else None
    if args.html:
        html = reports.render_html(store, tenant=tenant, period=args.period, since=args.since, until=args.until,
                                   budget=budget)
        Path(args.html).write_text(html, "utf-8")
        print(f"wrote {args.html}", file=sys.stderr)
        return 0
    data = reports.build_report(store, tenant=tenant, period=args.period, group_by=args.group_by,
                                since=args.since, until=args.until, budget=budget, settings=config.reports)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    elif args.markdown or not sys.stdout.isatty():
        print(reports.render_markdown(data, settings=config.reports))
    else:
        reports.render_terminal(data, Console())
    return 0


def _tenant_scoped() -> bool:
    """Reports cover every tenant in the database unless MCP_TARS_REPORT_TENANT=current
    (a file is the user's own, a team database the team's; tenants separate keys and namespaces)."""
    return os.environ.get("MCP_TARS_REPORT_TENANT") == "current"


def _heartbeat(args, config) -> int:
    from rich.progress import Progress

    from . import heartbeat

    state = _open(config)

    async def one_pass():
        with Progress(transient=True, disable=args.json or not sys.stderr.isatty()) as bar:
            task = bar.add_task("deferred work", total=None)

            async def progress(done, total, message):
                bar.update(task, completed=done, total=total, description=message)

            try:
                return await state.queue.process(force=args.force, progress=progress)
            finally:
                await state.engine.aclose()

    processed = asyncio.run(one_pass())
    checks = heartbeat.run_checks(state.store, config, state.engine.tenant)
    state.store.close()
    if args.json:
        print(json.dumps({"deferred": processed, "checks": [c.__dict__ for c in checks]}, indent=2, default=str))
    else:
        print(f"deferred work: {processed['submitted_tasks']} submitted in {processed['submitted_batches']} batch(es), "
              f"{processed['collected']} collected, {processed['queued']} queued, {processed['pending_batches']} batch(es) pending")
        for c in checks:
            print(f"[{'ok' if c.ok else 'MISSED'}] {c.message}")
    return 0 if all(c.ok for c in checks) else 1


def _export(args, config) -> int:
    from . import export
    from .engine import tenant_of
    from .store import open_store

    tenant = tenant_of(os.environ.get("ANTHROPIC_API_KEY"), config.tenant_namespace) if _tenant_scoped() else None
    data = export.costs_json(open_store(), tenant=tenant)
    Path(args.output).write_text(json.dumps(data, indent=2), "utf-8")
    print(f"wrote {args.output} ({len(data)} day(s))", file=sys.stderr)
    return 0


def _cache(args, config) -> int:
    from .cache import ResponseCache
    from .store import open_store

    cache = ResponseCache(open_store(), config.cache)
    if args.action == "clear":
        print(f"removed {cache.clear()} cached answer(s)")
    elif args.action == "purge-expired":
        print(f"removed {cache.purge_expired(retention_days=config.monitoring.retention_days)} expired answer(s)")
    else:
        print(json.dumps(cache.stats(), indent=2))
    return 0


def _db(args, config) -> int:
    from .store import open_store

    if args.db_command == "migrate":
        with open_store(migrate=False) as store:
            applied = store.migrate()
            known = len(store.migrations)
            if applied:
                print(f"{store.location}: applied {', '.join(applied)} ({known} migrations in all)")
            else:
                print(f"{store.location}: up to date ({known} migrations)")
        return 0
    from .store.copy import copy_history

    if args.src == args.dst:
        raise ValueError("db copy: SRC and DST are the same database")
    with open_store(args.src) as src, open_store(args.dst) as dst:
        report = copy_history(src, dst)
        print(f"copied {src.location} into {dst.location}: {report.ledger_rows:,} ledger row(s) read, "
              f"{report.ledger_added:,} new in DST ({report.ledger_rows - report.ledger_added:,} already there); "
              f"{report.alerts_added} alert(s) and {report.sessions_added} session(s) new")
        if report.open_tasks_left:
            print(f"note: SRC still has {report.open_tasks_left} deferred task(s) not finished; their results are "
                  "recorded in SRC. Let them finish there (mcp-tars --db SRC heartbeat), then copy again: rows "
                  "already copied are not copied twice.", file=sys.stderr)
    return 0


def _config(args, config) -> int:
    if args.action == "path":
        print(config_path())
    elif args.action == "reference":
        from .config import config_reference_markdown

        print(config_reference_markdown())
    elif args.action == "show":
        print(json.dumps(config.model_dump(mode="json"), indent=2))
    else:
        print(f"{config_path()}: valid")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
