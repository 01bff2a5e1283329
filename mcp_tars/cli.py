"""The ``mcp-tars`` command: serve, report, demo, heartbeat, export, cache, db, config.

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

from . import __version__
from .config import ConfigError, config_path, load_config
from .store import StoreError

PERIODS = ("today", "yesterday", "7d", "30d", "month", "all")
GROUPS = ("model", "day", "strategy", "session")
# Both HTTP servers listen on loopback only: no proxy sits in front whose
# X-Forwarded-* headers could mean anything, and the access log is off anyway
# (log level warning); skipping both is per-request work saved.
UVICORN_LOOPBACK = {"proxy_headers": False, "access_log": False}
EXPORTS = {"costs-json": "costs.json", "costs-csv": "costs.csv", "ledger-csv": "ledger.csv"}
TENANT_HELP = ("whose rows to read: 'all' (default: every tenant in this database, which is yours when the "
               "database is your own), 'current' (the tenant of this environment's ANTHROPIC_API_KEY, or of "
               "tenant_namespace), or a tenant id as reports show it (key:..., ns:...)")


def _tenant_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", default="all", metavar="all|current|ID", help=TENANT_HELP)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcp-tars", description="An MCP server that cuts what you pay for the Anthropic API.")
    p.add_argument("--version", action="version", version=f"mcp-tars {__version__}")
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
    r.add_argument("--since", help="start date YYYY-MM-DD (UTC), overrides --period; alone: up to today")
    r.add_argument("--until", help="end date YYYY-MM-DD (UTC, inclusive), overrides --period; alone: everything up to it")
    _tenant_option(r)
    fmt = r.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the report as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print the Markdown report")
    fmt.add_argument("--html", metavar="FILE", help="write the HTML report with charts to FILE (its first table: --group-by)")

    d = sub.add_parser("demo", help="offline end-to-end run against the built-in simulated API")
    d.add_argument("--keep", metavar="DIR", help="keep the demo's database in DIR")

    h = sub.add_parser("heartbeat", help="one pass of deferred work plus the health checks (for cron or HEARTBEAT.md)")
    h.add_argument("--json", action="store_true")
    h.add_argument("--force", action="store_true", help="submit all queued deferred work now")
    _tenant_option(h)

    e = sub.add_parser("export", help="write integration files: costs.json (the original brief's per-day record), "
                                      "costs.csv (the same per day) or ledger.csv (one row per call)")
    e.add_argument("what", choices=tuple(EXPORTS))
    e.add_argument("--output", "-o", help="file to write, '-' for standard output (default: costs.json, costs.csv "
                                          "or ledger.csv)")
    e.add_argument("--since", help="first day YYYY-MM-DD (UTC)")
    e.add_argument("--until", help="last day YYYY-MM-DD (UTC, inclusive)")
    _tenant_option(e)

    c = sub.add_parser("cache", help="manage the response cache")
    c.add_argument("action", choices=("clear", "stats", "purge-expired"))
    _tenant_option(c)

    db = sub.add_parser("db", help="upgrade the database, or copy a history into another database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("migrate", help="apply the schema migrations the database lacks (serve does it on start too)")
    cp = db_sub.add_parser("copy", help="copy the ledger, alerts and sessions of SRC into DST (idempotent, exact)")
    cp.add_argument("src", help="the database to copy from: a SQLite file path or a postgresql:// URL")
    cp.add_argument("dst", help="the database to copy into (e.g. the team's postgresql:// URL)")

    cfg = sub.add_parser("config", help="check, print or copy the configuration")
    cfg.add_argument("action", choices=("check", "show", "path", "reference", "init"),
                     help="reference prints the Markdown table of every field (the README's); init writes an "
                          "editable copy of the packaged configuration")
    cfg.add_argument("path", nargs="?", help="init: where to write it (default: your user configuration directory)")
    cfg.add_argument("--force", action="store_true", help="init: overwrite an existing file")
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
        if args.command == "config" and args.action == "init":
            return _config_init(args)  # a copy of the packaged file: whatever the current one holds
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
    except RuntimeError as e:
        if not _is_upstream_error(e):
            raise
        print(f"mcp-tars: {e}", file=sys.stderr)
        return 4
    except ValueError as e:
        print(f"mcp-tars: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `mcp-tars report | head`
        sys.stderr.close()
        return 0


def _is_upstream_error(e: Exception) -> bool:
    # upstream.py (and the anthropic SDK, a second of start-up) is imported only
    # by the commands that call the API: --version or config check need neither
    upstream = sys.modules.get("mcp_tars.upstream")
    return upstream is not None and isinstance(e, upstream.UpstreamError)


def _open(config):
    from .app import open_state

    return open_state(config)


def _serve(args, config) -> int:
    from .server import create_server

    # open the store (and migrate it), the engine and the queue before serving:
    # a damaged, locked or newer database, or a model without a price, stops
    # here with one line, not as a traceback inside the transport (which the
    # client would only see as "Connection closed")
    state = _open(config)
    server = create_server(lambda: state)
    if args.transport == "stdio":
        from . import stdio

        stdio.run(server)
        return 0
    import uvicorn

    from .http_security import LOOPBACK_HOSTS, build_http_app

    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    app = build_http_app(server, config, host, port)
    base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    # stdout stays clean (scripts may read it); the address is for the person who started it
    print(f"mcp-tars {__version__}: MCP (streamable HTTP) at {base}/mcp, health check at {base}/health",
          file=sys.stderr, flush=True)
    if config.gateway.on_http_server and host in LOOPBACK_HOSTS:
        from .gateway import mount_gateway

        app = mount_gateway(app, lambda: state.engine)  # the MCP server's own engine and ledger
    uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="on", **UVICORN_LOOPBACK)
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
    # The API's own server and date headers go back to the client, not uvicorn's beside them.
    uvicorn.run(create_gateway(lambda: _open(config)), host=host, port=port, log_level="warning", lifespan="on",
                server_header=False, date_header=False, **UVICORN_LOOPBACK)
    return 0


def _report(args, config) -> int:
    from rich.console import Console

    from . import reports
    from .budget import BudgetGuard
    from .money import clean_floats
    from .store import open_store

    store = open_store()
    tenant = _tenant(args, config)
    budget = BudgetGuard(store, config.budget).status(tenant) if tenant else None
    if args.html:
        html = reports.render_html(store, tenant=tenant, period=args.period, since=args.since, until=args.until,
                                   budget=budget, group_by=args.group_by, settings=config.reports)
        Path(args.html).write_text(html, "utf-8")
        print(f"wrote {args.html}", file=sys.stderr)
        return 0
    data = reports.build_report(store, tenant=tenant, period=args.period, group_by=args.group_by,
                                since=args.since, until=args.until, budget=budget, settings=config.reports)
    if args.json:
        print(json.dumps(clean_floats(data), indent=2, default=str))
    elif args.markdown or not sys.stdout.isatty():
        print(reports.render_markdown(data, settings=config.reports))
    else:
        reports.render_terminal(data, Console())
    return 0


def _tenant(args, config) -> str | None:
    """The tenant a command reads (None: every tenant in the database).

    A local database is one person's: its tenants are their API keys (and
    namespaces), so by default a command reads them all, whichever key this
    environment has (or none). ``--tenant current`` narrows to the key or
    namespace of this environment, ``--tenant ID`` to any one tenant."""
    from .engine import tenant_of

    if args.tenant == "all":
        return None
    if args.tenant == "current":
        return tenant_of(os.environ.get("ANTHROPIC_API_KEY"), config.tenant_namespace)
    if not args.tenant.startswith(("key:", "ns:")):
        raise ValueError(f"--tenant {args.tenant!r}: give 'all', 'current' or a tenant id as reports show it "
                         "(key:... or ns:...)")
    return args.tenant


def _heartbeat(args, config) -> int:
    from rich.progress import Progress

    from . import heartbeat
    from .money import clean_floats

    tenant = _tenant(args, config)
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

    processed = asyncio.run(one_pass())  # the queue of this environment's key: it is what can submit batches
    checks = heartbeat.run_checks(state.store, config, tenant)
    state.store.close()
    scope = "every tenant in this database" if tenant is None else f"tenant {tenant}"
    if args.json:
        print(json.dumps(clean_floats({"deferred": {**processed, "tenant": state.engine.tenant},
                                       "checks_scope": tenant or "all",
                                       "checks": [c.__dict__ for c in checks]}), indent=2, default=str))
    else:
        print(f"deferred work of tenant {state.engine.tenant}: {processed['submitted_tasks']} submitted in "
              f"{processed['submitted_batches']} batch(es), {processed['collected']} collected, "
              f"{processed['queued']} queued, {processed['pending_batches']} batch(es) pending")
        print(f"checks over {scope}:")
        for c in checks:
            print(f"[{'ok' if c.ok else 'MISSED'}] {c.message}")
    return 0 if all(c.ok for c in checks) else 1


def _export(args, config) -> int:
    from . import export
    from .store import open_store

    tenant = _tenant(args, config)
    store = open_store()
    if args.what == "costs-json":
        data = export.costs_json(store, tenant=tenant, since=args.since, until=args.until)
        text, summary = json.dumps(data, indent=2) + "\n", f"{len(data)} day(s)"
    elif args.what == "costs-csv":
        text, rows = export.costs_csv(store, tenant=tenant, since=args.since, until=args.until)
        summary = f"{rows} day(s)"
    else:
        text, rows = export.ledger_csv(store, tenant=tenant, since=args.since, until=args.until)
        summary = f"{rows} call(s)"
    output = args.output or EXPORTS[args.what]
    if output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        Path(output).write_text(text, "utf-8")
        print(f"wrote {output} ({summary})", file=sys.stderr)
    return 0


def _cache(args, config) -> int:
    from . import reports
    from .cache import ResponseCache
    from .money import clean_floats
    from .store import open_store

    store = open_store()
    cache = ResponseCache(store, config.cache)
    if args.action == "clear":
        print(f"removed {cache.clear()} cached answer(s)")
    elif args.action == "purge-expired":
        print(f"removed {cache.purge_expired(retention_days=config.monitoring.retention_days)} expired answer(s)")
    else:
        tenant = _tenant(args, config)
        stats = cache.stats(tenant=tenant)
        # What the cache saved has one definition, the ledger's (every hit saves
        # its request's baseline): the figure `report --period all` shows for
        # response caching. Hit counts kept on entries forget evicted ones.
        stats.pop("saved_usd", None)
        stats["hits_on_cached_entries"] = stats.pop("hits")
        ledger_report = reports.build_report(store, tenant=tenant, period="all", settings=config.reports)
        totals = ledger_report["totals"]
        stats["ledger"] = {"cache_hits": totals["cache_hits"], "exact": totals["cache_hits_exact"],
                           "semantic": totals["cache_hits_semantic"],
                           "saved_usd": totals["savings_by_lever_usd"]["cache"],
                           "since": ledger_report["since"], "until": ledger_report["until"],
                           "tenant": tenant or "all"}
        print(json.dumps(clean_floats(stats), indent=2))
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


def user_config_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("mcp-tars")) / "performance-config.json"


def _config_init(args) -> int:
    """Copy the packaged configuration where its owner can edit it (a uvx
    install keeps the package in a cache directory that is not theirs to edit)."""
    from .config import packaged_config_path

    target = Path(args.path).expanduser() if args.path else user_config_path()
    if target.is_dir():
        target = target / "performance-config.json"
    if target.exists() and not args.force:
        raise ValueError(f"{target} exists already; pass --force to overwrite it, or give another path")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(packaged_config_path().read_text("utf-8"), "utf-8")
    print(f"wrote {target}\n"
          f"Point mcp-tars at it with MCP_TARS_CONFIG={target} (for Claude Desktop, under \"env\" in "
          f"claude_desktop_config.json; for Claude Code, -e MCP_TARS_CONFIG={target}), or pass --config {target}. "
          f"`mcp-tars config check` validates it after an edit.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
