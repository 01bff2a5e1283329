"""Long, realistic agent sessions with facts planted early and asked about late.

A session is a coding/operations agent at work: it reads and edits files,
runs shell commands, tails logs, runs tests, installs packages, and talks
with the user about designs and decisions. Somewhere in the first part of the
session, facts are planted (a deploy target, a hostname, a port, a version, a
path, a URL, a person, a decision, a quantity with its unit, a ticket, a
date, an e-mail, a queue or bucket name, a commit, and credentials whose
*names* matter but whose *values* must never survive pruning). They are
carried by the user's words, by the assistant's words, by config files, by
.env files, by log lines buried in long outputs, by command lines. The last
user message asks about them without giving the answers away.

A fact is retained when its value string appears in the pruned conversation
(the question could be answered from it); a credential value leaks when it
does. Phrasings come in two disjoint pools, ``dev`` and ``holdout``, so that a
pruner tuned on one can be checked on the other.

    from bench.conversations import generate_session, fact_report
    session = generate_session(seed=7, target_tokens=80_000)
    report = fact_report(session, pruned_messages)
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass

# ---------------------------------------------------------------- vocabulary

FIRST_NAMES = [
    "Priya", "Tomasz", "Aiko", "Mateo", "Fatima", "Lars", "Chiara", "Kwame", "Olga", "Diego", "Mei", "Rahul",
    "Sofia", "Jonas", "Amara", "Nikolai", "Ines", "Hiroshi", "Zanele", "Emre", "Lucia", "Oskar", "Yara", "Bence",
]
LAST_NAMES = [
    "Raman", "Nowak", "Tanaka", "Alvarez", "Haddad", "Eriksen", "Bianchi", "Mensah", "Petrova", "Castillo",
    "Zhang", "Iyer", "Marquez", "Becker", "Okafor", "Volkov", "Duarte", "Sato", "Dlamini", "Yilmaz", "Ferreira",
    "Lindqvist", "Haddadi", "Kovacs",
]
COMPANIES = ["acme", "northwind", "globex", "initech", "umbrella", "hooli", "vandelay", "stark", "wayne", "tyrell"]
SERVICES = ["billing", "ledger", "checkout", "search", "notifier", "ingest", "auth", "catalog", "payments", "reports", "gateway", "scheduler"]
REGIONS = ["eu-west-1", "eu-central-1", "us-east-2", "us-west-2", "ap-south-1", "ap-northeast-1", "sa-east-1", "ca-central-1"]
ENVS = ["prod", "staging", "canary", "preprod", "perf", "qa"]
TECH_CHOICES = [
    ("Redis Streams", "Kafka"), ("PostgreSQL 16", "MySQL 8"), ("gRPC", "REST"), ("Temporal", "Celery"),
    ("ClickHouse", "Elasticsearch"), ("NATS JetStream", "RabbitMQ"), ("SQLite", "DynamoDB"), ("Terraform", "Pulumi"),
    ("pnpm", "yarn"), ("Argo Rollouts", "Flagger"), ("OpenTelemetry", "StatsD"), ("Litestream", "pgBackRest"),
    ("Caddy", "nginx"), ("uv", "Poetry"), ("DuckDB", "Pandas"), ("Envoy", "HAProxy"),
]
WORDS = (
    "cache queue retry worker batch index shard replica token session invoice ledger account report export "
    "import schema migration handler router middleware adapter client server request response payload record "
    "event stream window buffer limit quota budget metric trace span log audit policy rule filter mapper parser"
).split()
TLDS = ["internal", "net", "io", "cloud", "corp", "dev"]
CHARS_PER_TOKEN = 2.4  # JSON characters of these sessions per estimated token (measured)


def _slug(rng: random.Random, parts: int = 2) -> str:
    return "_".join(rng.choice(WORDS) for _ in range(parts))


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _token(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


@dataclass
class Project:
    company: str
    service: str
    repo: str
    modules: list[str]
    files: list[str]
    hosts: list[str]
    people: list[str]


def _project(rng: random.Random) -> Project:
    company = rng.choice(COMPANIES)
    service = rng.choice(SERVICES)
    repo = f"{company}-{service}"
    modules = [_slug(rng, 1) + rng.choice(["", "s", "_core", "_utils", "_api"]) for _ in range(8)]
    files = []
    for module in modules:
        for _ in range(rng.randint(2, 4)):
            files.append(f"src/{service}/{module}/{_slug(rng, rng.randint(1, 2))}.py")
    files += [f"tests/test_{_slug(rng, 1)}.py" for _ in range(5)]
    hosts = [f"{rng.choice(SERVICES)}-{rng.randint(1, 40):02d}.{rng.choice(REGIONS)}.{company}.{rng.choice(TLDS)}" for _ in range(10)]
    people = [f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" for _ in range(6)]
    return Project(company, service, repo, modules, files, hosts, people)


# ---------------------------------------------------------------- facts


@dataclass
class PlantedFact:
    kind: str
    value: str  # the string that must survive (for a credential: its name)
    question: str
    carrier: str = ""  # user | assistant | config | env | log | command | git | file
    message_index: int = -1
    secret_value: str | None = None  # for credentials: the value that must NOT survive


@dataclass
class Session:
    name: str
    seed: int
    pool: str
    system: str
    messages: list[dict]
    facts: list[PlantedFact]


def _fact_values(rng: random.Random, p: Project) -> list[PlantedFact]:
    """One candidate fact of each kind, with the question asked about it at the end."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    while f"{first} {last}" in p.people:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    chosen, rejected = rng.choice(TECH_CHOICES)
    env = rng.choice(ENVS)
    svc = rng.choice(SERVICES)
    port = str(rng.randint(10, 65) * 1000 + rng.randint(100, 999))
    secret_service = rng.choice(["STRIPE", "SENDGRID", "TWILIO", "DATADOG", "GITHUB", "OPENAI", "SENTRY", "PAGERDUTY"])
    secret_kind = rng.choice(["API_KEY", "SECRET_KEY", "TOKEN", "PASSWORD"])
    secret_name = f"{secret_service}_{secret_kind}"
    if secret_kind == "PASSWORD":
        secret_value = _token(rng, 10) + rng.choice("!#%&") + _token(rng, 4)
    else:
        secret_value = rng.choice(["sk_live_", "tok_", "key-", "", "xk1_"]) + _token(rng, 32)
    db_password = _token(rng, 14)
    return [
        PlantedFact("deploy_target", f"{env}-{rng.choice(REGIONS)}-{rng.choice('abc')}{rng.randint(1, 9)}", "Which cluster are we deploying this release to?"),
        PlantedFact("hostname", f"{svc}-db-{rng.randint(1, 99):02d}.{p.company}-{rng.choice(['corp', 'infra', 'ops'])}.{rng.choice(TLDS)}", f"What's the hostname of the {svc} database?"),
        PlantedFact("port", port, f"Which port does the {svc} admin endpoint listen on?"),
        PlantedFact("version", f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 40)}" + rng.choice(["", "", "-rc2", "-hotfix1"]), "What library version did we pin?"),
        PlantedFact("path", f"/etc/{p.company}/{svc}/{_slug(rng, 1)}-{rng.choice(['limits', 'routing', 'overrides', 'flags'])}.yaml", "Where does the override config live on the box?"),
        PlantedFact("url", f"https://{rng.choice(['grafana', 'kibana', 'runbooks', 'wiki'])}.{p.company}.{rng.choice(TLDS)}/{rng.choice(['d', 'page', 'doc'])}/{_token(rng, 6, string.ascii_lowercase + string.digits)}/{svc}-{rng.choice(['latency', 'errors', 'rollout', 'oncall'])}", "Which dashboard/runbook link did we say to watch?"),
        PlantedFact("person", f"{first} {last}", "Who has to approve the change?"),
        PlantedFact("decision", chosen, f"What did we decide to use instead of {rejected}?"),
        PlantedFact("quantity", rng.choice([f"{rng.randint(2, 48)} GiB", f"{rng.randint(120, 2400)} ms", f"{rng.randint(3, 96)} hours", f"${rng.randint(2, 90)},{rng.randint(100, 999)}", f"{rng.randint(11, 99)}.{rng.randint(1, 9)}%"]), "What limit/number did we agree on?"),
        PlantedFact("ticket", f"{rng.choice(['OPS', 'INC', 'PLAT', 'SEC', 'BILL'])}-{rng.randint(1000, 9999)}", "Which ticket tracks this?"),
        PlantedFact("date", f"2027-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", "What's the cut-over date?"),
        PlantedFact("email", f"{rng.choice(['oncall', 'sre', 'platform', 'release'])}-{svc}@{p.company}.{rng.choice(['com', 'io', 'net'])}", "Which address gets the release notes?"),
        PlantedFact("queue", f"{p.company}-{env}-{svc}-{rng.choice(['events', 'jobs', 'dlq', 'invoices'])}-v{rng.randint(2, 9)}", "What's the name of the queue we created?"),
        PlantedFact("commit", _hex(rng, 9), "Which commit introduced the regression?"),
        PlantedFact("credential", secret_name, f"Which environment variable holds the {secret_service.title()} credential?", secret_value=secret_value),
        PlantedFact("credential", "DB_PASSWORD", "Which variable holds the database password?", secret_value=db_password),
    ]


# Each carrier renders a fact into a message fragment. Two disjoint phrasing pools.
_USER_TEMPLATES = {
    "dev": {
        "deploy_target": ["Heads up: this release goes to {v}, not the usual cluster.", "We're deploying to {v} this time, please keep that in mind."],
        "hostname": ["The {svc} database lives on {v} now, the old host is gone.", "FYI the DB host is {v}."],
        "port": ["The admin endpoint listens on port {v}, don't use the public one.", "Use port {v} for the admin API."],
        "version": ["Pin the client library to {v}; newer ones break our retry logic.", "We need exactly version {v} of the SDK."],
        "path": ["The overrides are in {v} on the box.", "Ops keeps the override file at {v}."],
        "url": ["Watch {v} while it rolls out.", "The runbook is at {v}."],
        "person": ["{v} has to sign off before we merge anything here.", "Approval comes from {v}, nobody else."],
        "decision": ["Let's go with {v} and drop {alt}.", "Decision: {v}, not {alt}."],
        "quantity": ["Keep it under {v}, that's the agreed limit.", "The budget we agreed is {v}."],
        "ticket": ["Track everything under {v}.", "This is all for {v}."],
        "date": ["Cut-over is scheduled for {v}.", "We switch traffic on {v}."],
        "email": ["Send the release notes to {v}.", "Notes go to {v} as usual."],
        "queue": ["I created the queue {v} for this.", "New queue name: {v}."],
        "commit": ["I bisected it: {v} introduced the regression.", "The regression came in with commit {v}."],
        "credential": ["The key is in {v}={secret} in the shell env.", "I exported {v}={secret} for you."],
    },
    "holdout": {
        "deploy_target": ["Target for this rollout: {v}.", "Remember that {v} is where this ships, ops moved us last week."],
        "hostname": ["Point the migration at {v}, that's the primary.", "Connection string should use host {v}."],
        "port": ["Admin traffic goes through {v} (internal only).", "Note the admin port: {v}."],
        "version": ["Lock the dependency at {v} please.", "Stay on {v} until the upstream fix lands."],
        "path": ["On the hosts, the file to edit is {v}.", "Config overrides: {v}."],
        "url": ["Keep an eye on this during the rollout: {v}", "Dashboard: {v}"],
        "person": ["Needs a thumbs-up from {v} before merge.", "{v} is the approver for anything touching billing."],
        "decision": ["After the discussion we picked {v} over {alt}.", "Final answer is {v}; {alt} is out."],
        "quantity": ["Hard ceiling is {v}.", "We settled on {v} as the cap."],
        "ticket": ["Ref: {v}", "Link your commits to {v}."],
        "date": ["Migration window opens {v}.", "Go-live is {v}, no slipping."],
        "email": ["Please cc {v} on the summary.", "Distribution list for the notes: {v}"],
        "queue": ["Use {v} as the queue.", "The worker should consume from {v}."],
        "commit": ["git bisect points at {v}.", "Culprit commit: {v}"],
        "credential": ["Creds are in the env: {v}={secret}", "Run it with {v}={secret} set."],
    },
}
_ASSISTANT_TEMPLATES = {
    "dev": {
        "deploy_target": ["I'll make sure the manifests point at {v}.", "Noted, the target cluster is {v}."],
        "hostname": ["I found the database host in the settings: {v}.", "The service connects to {v} for its primary database."],
        "port": ["The admin listener is bound to port {v} in the server setup.", "Admin API port is {v}, separate from public traffic."],
        "version": ["I pinned the SDK to {v} in requirements.", "Locked the library at {v}."],
        "path": ["The override config is loaded from {v} at startup.", "I see the service reading {v} on boot."],
        "url": ["I'll keep the dashboard {v} in mind for the rollout.", "Runbook reference: {v}."],
        "person": ["I'll request review from {v} as the approver.", "{v} is listed as the code owner for this path."],
        "decision": ["Going with {v} rather than {alt} as agreed.", "I'll implement it on {v}; {alt} is dropped."],
        "quantity": ["The agreed limit of {v} is now enforced.", "I set the cap to {v}."],
        "ticket": ["I'll reference {v} in the commit messages.", "Tracking under {v}."],
        "date": ["Scheduled the cut-over for {v}.", "Cut-over planned on {v}."],
        "email": ["Release notes will go to {v}.", "I'll mail {v} with the notes."],
        "queue": ["Created the queue {v}.", "The consumer now reads from {v}."],
        "commit": ["The regression bisects to {v}.", "Commit {v} is where it broke."],
        "credential": ["The client reads {v} from the environment (currently {secret}).", "Set {v}={secret} in the deployment."],
    },
    "holdout": {
        "deploy_target": ["Updated the deploy job: it now targets {v}.", "Rollout destination set to {v}."],
        "hostname": ["Primary DB resolved to {v}.", "Confirmed the database endpoint is {v}."],
        "port": ["Confirmed: admin is served on {v}.", "The admin service binds {v}."],
        "version": ["Dependency locked: {v}.", "We're now on {v} of the SDK."],
        "path": ["Overrides file: {v}.", "Startup reads overrides from {v}."],
        "url": ["Monitoring link for the rollout: {v}", "Reference runbook: {v}"],
        "person": ["Approver on record: {v}.", "Review request sent to {v}."],
        "decision": ["Implemented with {v}; {alt} was ruled out.", "Chose {v} over {alt} per our discussion."],
        "quantity": ["Cap configured at {v}.", "Limit is {v} per the agreement."],
        "ticket": ["Commits reference {v}.", "Everything is filed under {v}."],
        "date": ["Cut-over booked for {v}.", "Switch date: {v}."],
        "email": ["Notes recipient: {v}.", "I'll send the summary to {v}."],
        "queue": ["Queue {v} is live.", "Worker bound to {v}."],
        "commit": ["Bisect result: {v}.", "Regression introduced in {v}."],
        "credential": ["Deployment env has {v}={secret}.", "Exported {v}={secret} for the job."],
    },
}
_CONFIG_KEYS = {
    "deploy_target": ["deploy_target", "cluster", "target_cluster"],
    "hostname": ["db_host", "database_host", "primary_host"],
    "port": ["admin_port", "admin_listen_port"],
    "version": ["sdk_version", "client_version"],
    "path": ["overrides_file", "override_path"],
    "url": ["dashboard_url", "runbook_url"],
    "person": ["approver", "code_owner"],
    "quantity": ["memory_limit", "max_budget", "latency_slo"],
    "ticket": ["tracking_ticket"],
    "date": ["cutover_date"],
    "email": ["release_notes_to", "notify_email"],
    "queue": ["queue_name", "consumer_queue"],
    "commit": ["bad_commit"],
}


# ---------------------------------------------------------------- noise


def _python_file(rng: random.Random, p: Project, path: str, lines: int) -> str:
    out = [f'"""{path.rsplit("/", 1)[-1][:-3].replace("_", " ").title()} for the {p.service} service."""', "", "from __future__ import annotations", "", "import logging", f"from {p.service}.{rng.choice(p.modules)} import {_slug(rng, 1)}", "", "log = logging.getLogger(__name__)", ""]
    while len(out) < lines:
        fn = _slug(rng, 2)
        args = ", ".join(_slug(rng, 1) for _ in range(rng.randint(1, 3)))
        out.append(f"def {fn}({args}):")
        out.append(f'    """{rng.choice(["Return", "Compute", "Load", "Validate", "Apply"])} the {_slug(rng, 1).replace("_", " ")} for a {rng.choice(WORDS)}."""')
        for _ in range(rng.randint(3, 9)):
            choice = rng.random()
            if choice < 0.3:
                out.append(f"    {_slug(rng, 1)} = {_slug(rng, 1)}.get({_slug(rng, 1)!r}, {rng.randint(0, 500)})")
            elif choice < 0.5:
                out.append(f"    if {_slug(rng, 1)} > {rng.randint(1, 100)}:")
                out.append(f'        log.warning("{_slug(rng, 2)} exceeded %s", {_slug(rng, 1)})')
            elif choice < 0.7:
                out.append(f"    for {rng.choice(WORDS)} in {_slug(rng, 1)}s:")
                out.append(f"        {_slug(rng, 1)}.append({rng.choice(WORDS)}.{_slug(rng, 1)})")
            else:
                out.append(f"    return {_slug(rng, 1)}({_slug(rng, 1)}, timeout={rng.randint(1, 60)})")
        out.append("")
    return "\n".join(out)


def _log_lines(rng: random.Random, p: Project, count: int) -> list[str]:
    lines = []
    minute = rng.randint(0, 50)
    for k in range(count):
        second = (k * 7) % 60
        level = rng.choices(["INFO", "DEBUG", "WARN", "ERROR"], [70, 15, 10, 5])[0]
        route = rng.choice(["/api/v1/invoices", "/api/v1/accounts", "/healthz", "/api/v2/search", "/internal/metrics", "/api/v1/checkout"])
        lines.append(
            f"2026-11-{rng.randint(10, 25):02d}T14:{minute:02d}:{second:02d}.{rng.randint(0, 999):03d}Z {level:5} "
            f"[{p.service}] req={_hex(rng, 12)} {rng.choice(['GET', 'POST', 'PUT'])} {route} "
            f"status={rng.choice([200, 200, 200, 201, 204, 404, 429, 500, 503])} dur={rng.randint(2, 1900)}ms "
            f"upstream={rng.choice(p.hosts)}:{rng.choice([443, 5432, 6379, 8080, 9092])}"
        )
    return lines


def _pytest_output(rng: random.Random, p: Project) -> str:
    tests = [f"{rng.choice(p.files[-5:])}::test_{_slug(rng, 2)}" for _ in range(rng.randint(15, 45))]
    lines = ["============================= test session starts ==============================", f"platform linux -- Python 3.11.{rng.randint(2, 9)}, pytest-8.{rng.randint(0, 3)}.{rng.randint(0, 5)}, pluggy-1.5.0", f"rootdir: /home/dev/{p.repo}", f"collected {len(tests)} items", ""]
    failed = rng.sample(tests, k=rng.randint(0, 3))
    for t in tests:
        lines.append(f"{t} {'FAILED' if t in failed else 'PASSED'}")
    for t in failed:
        lines += ["", f"____________________ {t.split('::')[1]} ____________________", f"    def {t.split('::')[1]}():", f">       assert result.{_slug(rng, 1)} == {rng.randint(1, 300)}", f"E       AssertionError: assert {rng.randint(1, 300)} == {rng.randint(1, 300)}", f"{t.split('::')[0]}:{rng.randint(10, 300)}: AssertionError"]
    lines.append(f"========== {len(failed)} failed, {len(tests) - len(failed)} passed in {rng.randint(1, 90)}.{rng.randint(10, 99)}s ==========")
    return "\n".join(lines)


def _pip_output(rng: random.Random) -> str:
    pkgs = rng.sample(["httpx", "pydantic", "sqlalchemy", "alembic", "redis", "boto3", "structlog", "tenacity", "orjson", "uvicorn", "fastapi", "celery", "psycopg", "click", "rich"], k=rng.randint(4, 10))
    lines = []
    for pkg in pkgs:
        ver = f"{rng.randint(0, 5)}.{rng.randint(0, 30)}.{rng.randint(0, 12)}"
        lines.append(f"Collecting {pkg}=={ver}")
        lines.append(f"  Downloading https://files.pythonhosted.org/packages/{_hex(rng, 2)}/{_hex(rng, 2)}/{_hex(rng, 60)}/{pkg}-{ver}-py3-none-any.whl ({rng.randint(30, 900)} kB)")
    lines.append("Installing collected packages: " + ", ".join(pkgs))
    lines.append("Successfully installed " + " ".join(f"{x}-{rng.randint(0, 5)}.{rng.randint(0, 30)}.{rng.randint(0, 12)}" for x in pkgs))
    return "\n".join(lines)


def _git_log(rng: random.Random, p: Project, count: int, planted: tuple[str, str] | None = None) -> str:
    entries = []
    for k in range(count):
        sha = planted[0] if planted and k == count // 2 else _hex(rng, 9)
        msg = planted[1] if planted and k == count // 2 else f"{rng.choice(['Fix', 'Add', 'Refactor', 'Bump', 'Remove'])} {_slug(rng, 2).replace('_', ' ')} in {rng.choice(p.modules)}"
        author = rng.choice(p.people)
        entries.append(f"{sha} {msg} ({author}, {rng.randint(1, 30)} days ago)")
    return "\n".join(entries)


def _yaml_config(rng: random.Random, p: Project, planted: list[tuple[str, str]]) -> str:
    lines = [f"service: {p.service}", f"environment: {rng.choice(ENVS)}", "server:", "  host: 0.0.0.0", f"  port: {rng.choice([8000, 8080, 9000])}", f"  workers: {rng.randint(2, 16)}", "database:", f"  pool_size: {rng.randint(5, 50)}", f"  statement_timeout_ms: {rng.randint(1000, 30000)}", "cache:", "  backend: redis", f"  ttl_seconds: {rng.randint(60, 86400)}", "features:"]
    for _ in range(rng.randint(4, 12)):
        lines.append(f"  {_slug(rng, 2)}: {rng.choice(['true', 'false'])}")
    lines.append("limits:")
    for _ in range(rng.randint(3, 8)):
        lines.append(f"  {_slug(rng, 2)}: {rng.randint(1, 5000)}")
    for key, value in planted:
        at = rng.randint(2, len(lines))
        lines.insert(at, f"{key}: {value}")
    return "\n".join(lines)


def _env_file(rng: random.Random, p: Project, planted: list[tuple[str, str]]) -> str:
    lines = [f"APP_ENV={rng.choice(ENVS)}", f"LOG_LEVEL={rng.choice(['info', 'debug', 'warning'])}", f"{p.service.upper()}_WORKERS={rng.randint(2, 32)}", f"REDIS_URL=redis://cache-{rng.randint(1, 9)}.{p.company}.internal:6379/0", f"FEATURE_{_slug(rng, 1).upper()}=1"]
    for key, value in planted:
        lines.insert(rng.randint(0, len(lines)), f"{key}={value}")
    return "\n".join(lines)


_FILLER_USER = [
    "Can you look into why the {m} tests are flaky?", "Next, refactor {f} so it's easier to test.", "Please add retries around the {m} client.",
    "Looks good. Now check the logs for errors from the last deploy.", "Why is {f} so slow? Profile it.", "Add type hints to {f}.",
    "Can you explain what {m} does before we change it?", "Run the test suite again.", "Clean up the imports in {f}.",
    "Let's talk about how we should structure the {m} module going forward.", "What do you think about splitting {m} into two services?",
    "ok, continue", "great, thanks. next: update the README section on {m}.", "Is there dead code in {f}?",
]
_FILLER_ASSISTANT = [
    "I'll start by reading {f} to understand the current structure.", "Let me check the logs to see what's failing.",
    "The {m} module wraps the upstream client and adds caching; the retry logic is spread across three helpers, which makes it hard to follow.",
    "I refactored the helper so the retry policy lives in one place. The behaviour is unchanged, but the tests are simpler now.",
    "There are two options here. We could keep a single process and add a worker pool, or split the consumer into its own deployment. The first is simpler to operate; the second isolates failures better and scales independently.",
    "The failures come from a race between the cache warm-up and the first request. Adding an explicit readiness check fixes it.",
    "I ran the suite; everything passes except one test that depends on wall-clock time. I'll make it use the injected clock.",
    "Done. I also removed two unused imports and a helper nobody calls anymore.",
]


# ---------------------------------------------------------------- session builder


class _Builder:
    def __init__(self, rng: random.Random, p: Project, output_scale: float = 1.0):
        self.scale = output_scale
        self.rng = rng
        self.p = p
        self.messages: list[dict] = []
        self.tool_counter = 0
        self.chars = 0

    def _add(self, role: str, content) -> int:
        if self.messages and self.messages[-1]["role"] == role:
            raise AssertionError("builder broke alternation")
        self.messages.append({"role": role, "content": content})
        self.chars += len(json.dumps(content))
        return len(self.messages) - 1

    def size(self, low: int, high: int) -> int:
        """A size drawn from [low, high], scaled for shorter or longer outputs."""
        return max(3, int(self.rng.randint(low, high) * self.scale))

    def user(self, text: str) -> int:
        return self._add("user", text if self.rng.random() < 0.6 else [{"type": "text", "text": text}])

    def assistant_text(self, text: str) -> int:
        return self._add("assistant", [{"type": "text", "text": text}])

    def tool_step(self, pre_text: str | None, calls: list[tuple[str, dict, str, bool]], thinking: str | None = None) -> tuple[int, int]:
        """One assistant message with tool calls, one user message with their results."""
        blocks = []
        if thinking:
            blocks.append({"type": "thinking", "thinking": thinking, "signature": _token(self.rng, 48)})
        if pre_text:
            blocks.append({"type": "text", "text": pre_text})
        results = []
        for name, tool_input, output, is_error in calls:
            self.tool_counter += 1
            tool_id = f"toolu_{self.tool_counter:04d}{_token(self.rng, 8)}"
            blocks.append({"type": "tool_use", "id": tool_id, "name": name, "input": tool_input})
            result = {"type": "tool_result", "tool_use_id": tool_id, "content": output if self.rng.random() < 0.7 else [{"type": "text", "text": output}]}
            if is_error:
                result["is_error"] = True
            results.append(result)
        a = self._add("assistant", blocks)
        u = self._add("user", results)
        return a, u

    # -- noise episodes, each starting after a user turn and ending on an assistant turn

    def episode(self) -> None:
        rng, p = self.rng, self.p
        kind = rng.choices(["read", "edit", "logs", "tests", "install", "git", "discuss", "grep"], [20, 18, 12, 12, 5, 6, 15, 12])[0]
        f = rng.choice(p.files)
        thinking = f"The user wants changes around {rng.choice(p.modules)}. I should look at {f} first and check callers." if rng.random() < 0.15 else None
        if kind == "read":
            content = _python_file(rng, p, f, self.size(30, 180))
            self.tool_step(rng.choice(_FILLER_ASSISTANT).format(f=f, m=rng.choice(p.modules)), [("read_file", {"path": f}, content, False)], thinking)
            self.assistant_or_continue()
        elif kind == "edit":
            content = _python_file(rng, p, f, self.size(30, 150))
            self.tool_step(None, [("read_file", {"path": f}, content, False)], thinking)
            old = rng.choice(content.splitlines()[5:] or ["pass"])
            self.tool_step("I'll apply the change now.", [("str_replace", {"path": f, "old_str": old, "new_str": old + "  # reviewed"}, "The file has been edited.", False)])
            new = content + f"\n\ndef {_slug(rng, 2)}():\n    return None\n"
            self.tool_step("Let me re-read the file to verify the edit.", [("read_file", {"path": f}, new, False)])
            self.assistant_or_continue()
        elif kind == "logs":
            lines = _log_lines(rng, p, self.size(20, 250))
            self.tool_step("Let me check the recent logs.", [("bash", {"command": f"kubectl logs deploy/{p.service} --since=1h | tail -n {len(lines)}"}, "\n".join(lines), False)], thinking)
            self.assistant_or_continue()
        elif kind == "tests":
            self.tool_step("Running the tests.", [("bash", {"command": "pytest -q"}, _pytest_output(rng, p), False)], thinking)
            self.assistant_or_continue()
        elif kind == "install":
            self.tool_step("Installing the dependencies.", [("bash", {"command": "pip install -r requirements.txt"}, _pip_output(rng), False)])
            self.assistant_or_continue()
        elif kind == "git":
            self.tool_step("Let me look at recent history.", [("bash", {"command": "git log --oneline -n 30"}, _git_log(rng, p, 30), False)])
            self.assistant_or_continue()
        elif kind == "grep":
            pattern = _slug(rng, 1)
            out = "\n".join(f"{rng.choice(p.files)}:{rng.randint(1, 400)}:    {pattern} = {_slug(rng, 1)}({rng.randint(0, 99)})" for _ in range(self.size(5, 60)))
            self.tool_step(None, [("grep", {"pattern": pattern, "path": "src/"}, out, False)])
            self.assistant_or_continue()
        else:
            self.assistant_text(" ".join(rng.sample(_FILLER_ASSISTANT, k=rng.randint(2, 4))).format(f=f, m=rng.choice(p.modules)))

    def assistant_or_continue(self) -> None:
        rng, p = self.rng, self.p
        self.assistant_text(rng.choice(_FILLER_ASSISTANT).format(f=rng.choice(p.files), m=rng.choice(p.modules)))

    def user_request(self) -> None:
        rng, p = self.rng, self.p
        self.user(rng.choice(_FILLER_USER).format(f=rng.choice(p.files), m=rng.choice(p.modules)))


def _plant(b: _Builder, fact: PlantedFact, carrier: str, pool: str, alt: str) -> None:
    """Write ``fact`` into the session through ``carrier``; the session is after an assistant turn."""
    rng, p = b.rng, b.p
    v = fact.value
    secret = fact.secret_value or ""
    svc = p.service
    if carrier == "user":
        text = rng.choice(_USER_TEMPLATES[pool][fact.kind]).format(v=v, alt=alt, secret=secret, svc=svc)
        if rng.random() < 0.5:
            text = rng.choice(_FILLER_USER).format(f=rng.choice(p.files), m=rng.choice(p.modules)) + " " + text
        fact.message_index = b.user(text)
        b.episode()
    elif carrier == "assistant":
        b.user_request()
        b.episode() if rng.random() < 0.5 else None
        if b.messages[-1]["role"] == "assistant":
            b.user("ok, go on")
        text = rng.choice(_ASSISTANT_TEMPLATES[pool][fact.kind]).format(v=v, alt=alt, secret=secret, svc=svc)
        fact.message_index = b.assistant_text(rng.choice(_FILLER_ASSISTANT).format(f=rng.choice(p.files), m=rng.choice(p.modules)) + " " + text)
    elif carrier == "config":
        b.user_request()
        key = rng.choice(_CONFIG_KEYS[fact.kind])
        # A distinct file per planted config: re-reading a file shows its newer version, not another file.
        path = f"config/{rng.choice(ENVS)}-{_slug(rng, 1)}-{len(b.messages)}.yaml"
        _, fact.message_index = b.tool_step("Let me read the configuration.", [("read_file", {"path": path}, _yaml_config(rng, p, [(key, v)]), False)])
        b.assistant_or_continue()
    elif carrier == "env":
        b.user_request()
        _, fact.message_index = b.tool_step("Checking the environment file.", [("bash", {"command": "cat .env.production"}, _env_file(rng, p, [(v, secret)]), False)])
        b.assistant_or_continue()
    elif carrier == "log":
        b.user_request()
        lines = _log_lines(rng, p, b.size(80, 400))
        key = {"deploy_target": "target", "hostname": "db_host", "port": "admin_port", "version": "sdk_version", "queue": "queue", "url": "dashboard", "path": "overrides", "commit": "build_commit"}.get(fact.kind, fact.kind)
        lines.insert(len(lines) // 2 + rng.randint(-20, 20), f"2026-11-20T14:31:07.118Z INFO  [{p.service}] startup config loaded {key}={v}")
        _, fact.message_index = b.tool_step("Let me look at the startup logs.", [("bash", {"command": f"journalctl -u {p.service} --since today"}, "\n".join(lines), False)])
        b.assistant_or_continue()
    elif carrier == "git":
        b.user_request()
        _, fact.message_index = b.tool_step("Bisecting.", [("bash", {"command": "git bisect run pytest -q tests/"}, _git_log(rng, p, 20, (v, "first bad commit: " + rng.choice(["Change retry backoff", "Inline cache lookup", "Switch serializer"]))), False)])
        b.assistant_or_continue()
    elif carrier == "command":
        b.user_request()
        command = {"queue": f"aws sqs create-queue --queue-name {v}", "deploy_target": f"kubectl config use-context {v}", "version": f"pip install {p.service}-sdk=={v}", "hostname": f"psql -h {v} -U app -c 'select 1'"}[fact.kind]
        _, fact.message_index = b.tool_step(None, [("bash", {"command": command}, rng.choice(["OK", "done", "Switched context.", " ?column? \n----------\n        1\n(1 row)"]), False)])
        b.assistant_or_continue()
    else:
        raise ValueError(carrier)


_CARRIERS = {
    "deploy_target": ["user", "assistant", "config", "log", "command"],
    "hostname": ["user", "assistant", "config", "log", "command"],
    "port": ["user", "assistant", "config", "log"],
    "version": ["user", "assistant", "config", "command"],
    "path": ["user", "assistant", "config", "log"],
    "url": ["user", "assistant", "config"],
    "person": ["user", "assistant", "config"],
    "decision": ["user", "assistant"],
    "quantity": ["user", "assistant", "config"],
    "ticket": ["user", "assistant", "config"],
    "date": ["user", "assistant", "config"],
    "email": ["user", "assistant", "config"],
    "queue": ["user", "assistant", "config", "command", "log"],
    "commit": ["user", "assistant", "git"],
    "credential": ["user", "assistant", "env"],
}


def generate_session(seed: int, target_tokens: int = 60_000, pool: str = "dev", facts: int = 12, plant_within: float = 0.5, output_scale: float = 1.0) -> Session:
    """A session of about ``target_tokens`` (mcp_tars.tokens estimate) with
    ``facts`` facts planted within the first ``plant_within`` share of it.
    ``output_scale`` scales file, log and search outputs (smaller: more, shorter messages)."""
    rng = random.Random(seed * 7919 + (0 if pool == "dev" else 104729))
    p = _project(rng)
    b = _Builder(rng, p, output_scale)
    candidates = _fact_values(rng, p)
    credentials = [f for f in candidates if f.kind == "credential"]
    others = [f for f in candidates if f.kind != "credential"]
    chosen = rng.sample(others, k=min(len(others), max(1, facts - 1))) + rng.sample(credentials, k=1 if facts > 1 else 0)
    rng.shuffle(chosen)
    alt_for = {f.value: next((alt for c, alt in TECH_CHOICES if c == f.value), "the alternative") for f in chosen}
    target_chars = target_tokens * CHARS_PER_TOKEN
    plant_until = target_chars * plant_within
    schedule = sorted(rng.uniform(0.02, 1.0) * plant_until for _ in chosen)

    b.user(f"We're working on the {p.repo} repo today. " + rng.choice(_FILLER_USER).format(f=rng.choice(p.files), m=rng.choice(p.modules)))
    b.episode()
    pending = list(zip(schedule, chosen))
    while b.chars < target_chars or pending:
        if pending and b.chars >= pending[0][0]:
            _, fact = pending.pop(0)
            carrier = rng.choice(_CARRIERS[fact.kind])
            fact.carrier = carrier
            _plant(b, fact, carrier, pool, alt_for[fact.value])
            continue
        b.user_request() if rng.random() < 0.35 else b.user(rng.choice(["continue", "go on", "ok", "next step please", "keep going"]))
        b.episode()
        while rng.random() < 0.5 and b.chars < target_chars:
            b.user(rng.choice(["continue", "ok", "and the rest?", "go ahead"]))
            b.episode()
    questions = " ".join(f.question for f in chosen)
    b.user("Before we wrap up, a few questions so I can write the hand-off note (answer from what we did in this session): " + questions)
    system = f"You are a coding agent working in the {p.repo} repository. Use the tools to read, edit and run code. Be concise."
    return Session(f"{pool}-{seed}", seed, pool, system, b.messages, chosen)


def generate_sessions(count: int, seed: int = 0, target_tokens: int = 60_000, pool: str = "dev", facts: int = 12) -> list[Session]:
    rng = random.Random(seed)
    sizes = [int(target_tokens * rng.uniform(0.5, 1.6)) for _ in range(count)]
    return [generate_session(seed * 1000 + i, sizes[i], pool, facts) for i in range(count)]


def conversation_text(messages: list[dict], system=None) -> str:
    return json.dumps({"system": system, "messages": messages}, ensure_ascii=False)


def fact_report(session: Session, pruned_messages: list[dict], pruned_system=None) -> dict:
    """Which planted facts survive in ``pruned_messages`` and which credential values leaked."""
    text = plain_text(pruned_messages) + "\n" + (pruned_system or "")
    retained = [f for f in session.facts if f.value in text]
    leaked = [f for f in session.facts if f.secret_value and f.secret_value in text]
    return {
        "facts": len(session.facts),
        "retained": len(retained),
        "lost": [(f.kind, f.carrier, f.value) for f in session.facts if f not in retained],
        "leaked": [(f.kind, f.value) for f in leaked],
    }


def plain_text(messages: list[dict]) -> str:
    """Every string a conversation carries, but signatures, ids and binary data."""
    parts: list[str] = []

    def walk(value) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                if k not in ("signature", "data", "id", "tool_use_id"):
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(messages)
    return "\n".join(parts)


def build_long_conversation(target_tokens: int = 500_000, seed: int = 1) -> Session:
    """The brief's 500K-token conversation: thousands of messages, mostly short
    tool steps, with 14 facts planted in its first half."""
    from mcp_tars.tokens import estimate_request_tokens

    session = generate_session(seed, target_tokens, facts=14, output_scale=0.3)
    actual = estimate_request_tokens(session.messages, session.system)
    if actual < target_tokens:  # the chars-per-token guess was off for this seed: scale once
        session = generate_session(seed, int(target_tokens * target_tokens / actual * 1.02), facts=14, output_scale=0.3)
    return session
