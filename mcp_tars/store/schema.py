"""The current schema's shared facts: money units, the ledger's columns and the
report roll-ups, for both backends.

Money is stored exactly, as whole picodollars (1e-12 USD) in INTEGER/BIGINT
columns named ``*_picousd``: every price in the table times every multiplier
(batch, long context, regional) is a whole number of picodollars per token,
so a ledger of any length adds up to the bill with no rounding at all. The
store's functions take and return USD as float (what the engine computes)
and convert at the boundary (``to_picousd`` / ``usd``).

The roll-ups (per-day sums that reports read, kept by triggers in the same
transaction as each ledger row) are defined once here, as expressions over a
ledger row, and ``rollup_ddl`` writes their tables and triggers in either
dialect. Migrations never call it: each migration holds the SQL it ran, as it
ran (see ``migrations.py``); this generator is for the checks
(``reports.ledger_sums``, ``reports.rollup_mismatches``), for
``reports.rebuild_rollups`` and for writing the next migration.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal

PICO = 12  # money columns hold USD x 10**12
_SCALE = Decimal(10) ** PICO


def to_picousd(usd) -> int | None:
    """USD (float, Decimal, int or None) as whole picodollars, rounded half-even.

    A float goes through its shortest repr, so a price computed in Decimal and
    handed over as float comes back to the same decimal digits."""
    if usd is None:
        return None
    value = usd if isinstance(usd, Decimal) else Decimal(repr(usd) if isinstance(usd, float) else str(usd))
    return int((value * _SCALE).to_integral_value(ROUND_HALF_EVEN))


def usd(picousd) -> float | None:
    """Picodollars (int, Decimal from a PostgreSQL SUM, or None) as USD, the nearest float."""
    if picousd is None:
        return None
    return float(Decimal(int(picousd)) / _SCALE)


def exact_usd(picousd) -> Decimal | None:
    """Picodollars as an exact Decimal of USD (for checks against a bill)."""
    if picousd is None:
        return None
    return Decimal(int(picousd)) / _SCALE


# The ledger's money: the engine's row keys (USD) and the columns that hold them.
LEDGER_MONEY = {
    "cost_usd": "cost_picousd",
    "baseline_cost_usd": "baseline_cost_picousd",
    "saved_usd": "saved_picousd",
    "saved_cache_usd": "saved_cache_picousd",
    "saved_pruning_usd": "saved_pruning_picousd",
    "saved_routing_usd": "saved_routing_picousd",
    "saved_prompt_cache_usd": "saved_prompt_cache_picousd",
    "saved_batch_usd": "saved_batch_picousd",
}

# Bit i of a roll-up row's ``levers`` mask: the saving of lever i on the ledger
# row is non-zero (NULL counts as 0). Non-zero, not positive: a lever that made
# a call dearer (a prompt-cache write never read back, a call routed up to a
# dearer model) touched it too, and only then does a lever's group hold every
# cent of that lever's saving. The ``helped_*`` sums stay "saving > 0".
LEVER_BITS: tuple[tuple[str, str], ...] = (
    ("cache", "saved_cache_picousd"),
    ("routing", "saved_routing_picousd"),
    ("pruning", "saved_pruning_picousd"),
    ("prompt_cache", "saved_prompt_cache_picousd"),
    ("batch", "saved_batch_picousd"),
)


def _flag(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


# (column, expression over a ledger row ``{r}``), portable SQL. Money columns
# are the ``*_picousd`` ones; ``latency_ms`` is the only floating-point sum.
ROLLUP_SUMS: tuple[tuple[str, str], ...] = (
    ("calls", "1"),
    ("api_calls", _flag("{r}.source = 'api'")),
    ("cache_hits", _flag("{r}.source = 'cache'")),
    ("cache_hits_exact", _flag("{r}.source = 'cache' AND {r}.cache_kind = 'exact'")),
    ("cache_hits_semantic", _flag("{r}.source = 'cache' AND {r}.cache_kind = 'semantic'")),
    ("batch_calls", _flag("{r}.source = 'batch'")),
    ("input_tokens", "{r}.input_tokens"),
    ("cache_write_5m_tokens", "{r}.cache_write_5m_tokens"),
    ("cache_write_1h_tokens", "{r}.cache_write_1h_tokens"),
    ("cache_read_tokens", "{r}.cache_read_tokens"),
    ("output_tokens", "{r}.output_tokens"),
    ("cost_picousd", "COALESCE({r}.cost_picousd, 0)"),
    ("priced_calls", _flag("{r}.cost_picousd IS NOT NULL")),
    ("unknown_price_calls", _flag("{r}.pricing_source = 'unknown'")),
    ("baseline_cost_picousd", "COALESCE({r}.baseline_cost_picousd, 0)"),
    ("baseline_calls", _flag("{r}.baseline_cost_picousd IS NOT NULL")),
    ("estimated_baseline_calls", _flag("{r}.baseline_cost_picousd IS NOT NULL AND {r}.baseline_estimated != 0")),
    ("saved_cache_picousd", "COALESCE({r}.saved_cache_picousd, 0)"),
    ("saved_routing_picousd", "COALESCE({r}.saved_routing_picousd, 0)"),
    ("saved_pruning_picousd", "COALESCE({r}.saved_pruning_picousd, 0)"),
    ("saved_prompt_cache_picousd", "COALESCE({r}.saved_prompt_cache_picousd, 0)"),
    ("saved_batch_picousd", "COALESCE({r}.saved_batch_picousd, 0)"),
    ("helped_cache", _flag("COALESCE({r}.saved_cache_picousd, 0) > 0")),
    ("helped_routing", _flag("COALESCE({r}.saved_routing_picousd, 0) > 0")),
    ("helped_pruning", _flag("COALESCE({r}.saved_pruning_picousd, 0) > 0")),
    ("helped_prompt_cache", _flag("COALESCE({r}.saved_prompt_cache_picousd, 0) > 0")),
    ("helped_batch", _flag("COALESCE({r}.saved_batch_picousd, 0) > 0")),
    ("pruned_calls", _flag("{r}.tokens_before_pruning IS NOT NULL AND {r}.tokens_after_pruning IS NOT NULL")),
    ("tokens_pruned", "COALESCE({r}.tokens_before_pruning - {r}.tokens_after_pruning, 0)"),
    ("latency_ms", "COALESCE({r}.latency_ms, 0)"),
    ("latency_calls", _flag("{r}.latency_ms IS NOT NULL")),
    # the tokens of the calls that cache hits replaced (a hit's cache_replaced_tokens)
    ("cache_tokens_replaced", "CASE WHEN {r}.source = 'cache' THEN COALESCE({r}.cache_replaced_tokens, 0) ELSE 0 END"),
    ("cache_hits_with_tokens", _flag("{r}.source = 'cache' AND {r}.cache_replaced_tokens IS NOT NULL")),
)
FLOAT_SUMS = frozenset({"latency_ms"})
MONEY_SUMS = frozenset(c for c, _ in ROLLUP_SUMS if c.endswith("_picousd"))

LEVER_MASK = " + ".join(f"({_flag(f'COALESCE({{r}}.{column}, 0) != 0')}) * {1 << bit}"
                        for bit, (_, column) in enumerate(LEVER_BITS))


class Rollup:
    """One roll-up table: keys (column -> expression over a ledger row) and sums."""

    def __init__(self, table: str, keys: dict[str, str], sums: tuple[tuple[str, str], ...],
                 integer_keys: frozenset[str] = frozenset(), day_index: bool = True):
        self.table, self.keys, self.sums = table, keys, sums
        self.integer_keys, self.day_index = integer_keys, day_index

    @property
    def columns(self) -> list[str]:
        return [*self.keys, *(c for c, _ in self.sums)]

    def values(self, r: str, sign: str = "") -> str:
        return ", ".join([e.format(r=r) for e in self.keys.values()]
                         + [f"{sign}({e.format(r=r)})" for _, e in self.sums])

    def watched(self) -> list[str]:
        """The ledger columns whose update moves money between groups (setting
        task_id on a row, for instance, does not)."""
        return sorted({name for e in [*self.keys.values(), *(e for _, e in self.sums)]
                       for name in re.findall(r"\{r\}\.(\w+)", e)})


# daily_spend first: on PostgreSQL every ledger write locks its (tenant, day)
# rows before the others, in key order, so concurrent writers never wait for
# each other in a cycle.
ROLLUPS: tuple[Rollup, ...] = (
    # budgets: a month of spend is at most 31 rows, one indexed range per check
    Rollup("daily_spend", {"tenant": "{r}.tenant", "day": "{r}.day"},
           (("calls", "1"), ("cost_picousd", "COALESCE({r}.cost_picousd, 0)")), day_index=False),
    # every report but sessions
    Rollup("rollup_daily_model", {"tenant": "{r}.tenant", "day": "{r}.day", "model": "{r}.model",
                                  "levers": LEVER_MASK}, ROLLUP_SUMS, integer_keys=frozenset({"levers"})),
    # per session ('' for calls without one)
    Rollup("rollup_daily_session", {"tenant": "{r}.tenant", "day": "{r}.day",
                                    "session_key": "COALESCE({r}.session_id, '')"}, ROLLUP_SUMS),
)


def _upsert(rollup: Rollup, r: str, sign: str) -> str:
    """The SQLite trigger statement that adds (or, with sign "-", removes) ledger row ``r``."""
    sets = ", ".join(f"{c} = {c} + excluded.{c}" for c, _ in rollup.sums)
    return (f"INSERT INTO {rollup.table} ({', '.join(rollup.columns)}) VALUES ({rollup.values(r, sign)}) "
            f"ON CONFLICT ({', '.join(rollup.keys)}) DO UPDATE SET {sets};")


def _sums_select(rollup: Rollup, source: str, sign: str = "") -> str:
    """``SELECT keys, SUM(...)`` of the ledger rows in ``source``, one row per group."""
    keys = [e.format(r="ledger") for e in rollup.keys.values()]
    sums = [f"{sign}SUM({e.format(r='ledger')})" for _, e in rollup.sums]
    alias = "" if source == "ledger" else " AS ledger"
    return f"SELECT {', '.join(keys + sums)} FROM {source}{alias} GROUP BY {', '.join(keys)}"


def _create_table(rollup: Rollup, backend: str) -> list[str]:
    big = "INTEGER" if backend == "sqlite" else "BIGINT"
    real = "REAL" if backend == "sqlite" else "DOUBLE PRECISION"
    columns = ([f"{k} {'INTEGER' if k in rollup.integer_keys else 'TEXT'} NOT NULL" for k in rollup.keys]
               + [f"{c} {real if c in FLOAT_SUMS else big} NOT NULL DEFAULT 0" for c, _ in rollup.sums])
    out = [f"CREATE TABLE {rollup.table} (\n    " + ",\n    ".join(columns)
           + f",\n    PRIMARY KEY ({', '.join(rollup.keys)})\n)"]
    if rollup.day_index:
        out.append(f"CREATE INDEX {rollup.table}_day ON {rollup.table}(day)")
    out.append(f"INSERT INTO {rollup.table} ({', '.join(rollup.columns)}) {_sums_select(rollup, 'ledger')}")
    return out


def _pg_upsert(rollup: Rollup, source: str, sign: str) -> str:
    # groups in key order: concurrent statements lock the roll-up rows in the same order
    order = ", ".join(str(i + 1) for i in range(len(rollup.keys)))
    sets = ", ".join(f"{c} = {rollup.table}.{c} + excluded.{c}" for c, _ in rollup.sums)
    return (f"INSERT INTO {rollup.table} ({', '.join(rollup.columns)}) {_sums_select(rollup, source, sign)} "
            f"ORDER BY {order} ON CONFLICT ({', '.join(rollup.keys)}) DO UPDATE SET {sets};")


def rollup_ddl(backend: str) -> list[str]:
    """Statements that drop and rebuild every roll-up (tables, backfill from the
    ledger, triggers) in the current version, for ``backend`` ("sqlite" or "postgres").

    SQLite: row triggers, three per roll-up. PostgreSQL: statement triggers
    over the transition tables, so a statement that inserts 500 rows updates
    each group it touches once (one function, so the roll-ups are always
    updated in the same order, daily_spend first)."""
    if backend == "sqlite":
        out: list[str] = []
        for rollup in ROLLUPS:
            out += [f"DROP TRIGGER IF EXISTS {rollup.table}_{op}" for op in ("insert", "delete", "update")]
            out.append(f"DROP TABLE IF EXISTS {rollup.table}")
            out += _create_table(rollup, backend)
            add_new, remove_old = _upsert(rollup, "NEW", ""), _upsert(rollup, "OLD", "-")
            out.append(f"CREATE TRIGGER {rollup.table}_insert AFTER INSERT ON ledger BEGIN\n    {add_new}\nEND")
            out.append(f"CREATE TRIGGER {rollup.table}_delete AFTER DELETE ON ledger BEGIN\n    {remove_old}\nEND")
            out.append(f"CREATE TRIGGER {rollup.table}_update AFTER UPDATE OF {', '.join(rollup.watched())} "
                       f"ON ledger BEGIN\n    {remove_old}\n    {add_new}\nEND")
        return out
    if backend != "postgres":
        raise ValueError(f"unknown backend {backend!r}")
    out = [f"DROP TRIGGER IF EXISTS ledger_rollups_{op} ON ledger" for op in ("insert", "delete", "update")]
    out.append("DROP FUNCTION IF EXISTS ledger_rollups()")
    out += [f"DROP TABLE IF EXISTS {rollup.table}" for rollup in ROLLUPS]
    for rollup in ROLLUPS:
        out += _create_table(rollup, backend)
    remove_old = "\n        ".join(_pg_upsert(rollup, "old_rows", "-") for rollup in ROLLUPS)
    add_new = "\n        ".join(_pg_upsert(rollup, "new_rows", "") for rollup in ROLLUPS)
    out.append("CREATE FUNCTION ledger_rollups() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
               f"    IF TG_OP IN ('UPDATE', 'DELETE') THEN\n        {remove_old}\n    END IF;\n"
               f"    IF TG_OP IN ('INSERT', 'UPDATE') THEN\n        {add_new}\n    END IF;\n"
               "    RETURN NULL;\nEND\n$$")
    # (a trigger with transition tables cannot list columns: every UPDATE of the ledger re-adds its rows)
    for op, tables in (("insert", "NEW TABLE AS new_rows"), ("delete", "OLD TABLE AS old_rows"),
                       ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows")):
        out.append(f"CREATE TRIGGER ledger_rollups_{op} AFTER {op.upper()} ON ledger REFERENCING {tables} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ledger_rollups()")
    return out
