"""Short conversations with large system prompts, facts planted in every kind
of turn, and a final user turn that asks about them. Ours: generated for
``bench.pruning``, not real traffic.

A conversation is a person working with an assistant (an agent with tools, or
plain chat): they talk, paste code and logs, the assistant explains, writes
long plans and PR descriptions, runs commands and reads files. Early on,
facts are stated: a name, a port, a host, an address, a version, a path, a
URL, an e-mail, a date or a time, a quantity with its unit, a ticket, a
commit, an identifier, a decision, the name of a thing (a bucket, a branch,
a namespace...), a region, and the name of a credential (whose value must
never survive pruning). Each is carried by one kind of turn:

    user_prose        the user says it                   assistant_prose  the assistant says it
    user_code         in code the user pastes            assistant_long   inside a long plan / PR description
    user_paste        in output the user pastes          tool_input       in a command the assistant runs
    tool_config       in a config file a tool returns    tool_log         one line of a long log
    tool_json         in a JSON answer                   tool_table       in a CLI table
    tool_code         a constant in a source file

The final user turn asks about every planted fact (without giving the
answers away); in the ``tool_loop`` shape it is the tool results the
assistant fetched to answer that question.

Shapes: ``prose`` (talk, long assistant answers), ``code`` (pasted code and
source files), ``tools`` (an agent reading logs, configs, JSON), ``mixed``,
``tool_loop`` (mixed, ending inside the tool loop). Sizes are total tokens,
the system prompt (``system_tokens``) included.

Two disjoint pools, ``dev`` and ``holdout``: every template list and every
vocabulary list is split between them (even and odd entries). Tune on dev;
holdout is only ever reported.

    from bench.fact_conversations import generate, facts_kept
    convo = generate(seed=3, pool="dev", shape="code", total_tokens=12_000, system_tokens=3_500)
"""

from __future__ import annotations

import json
import random
import re
import string
from dataclasses import dataclass, field

from mcp_tars import tokens as tok

from bench.conversations import plain_text

POOLS = ("dev", "holdout")
SHAPES = ("prose", "code", "tools", "mixed", "tool_loop")


def _split(items: list, pool: str) -> list:
    """The pool's half of a list: even entries are dev, odd ones holdout."""
    return items[0::2] if pool == "dev" else items[1::2]


# ---------------------------------------------------------------- vocabularies (split by pool)

FIRST = ["Dana", "Tobias", "Ingrid", "Marek", "Leila", "Rohan", "Astrid", "Kofi", "Noemi", "Viktor", "Sanne", "Paolo",
         "Anouk", "Dmitri", "Keiko", "Rafael", "Yusuf", "Helga", "Camille", "Tariq", "Beatriz", "Joon", "Freya", "Idris"]
LAST = ["Okonkwo", "Lindgren", "Castellanos", "Moreau", "Brandt", "Takahashi", "Novak", "Oyelaran", "Petersen", "Quispe",
        "Szabo", "Varga", "Whitfield", "Achterberg", "Rasmussen", "Delacroix", "Mwangi", "Halvorsen", "Fitzgerald", "Kaur"]
COMPANY = ["fernhill", "bluequay", "orbitex", "lumenworks", "pinecrest", "quillstone", "rivermint", "saltmarsh",
           "tidewater", "ironbark", "moonrake", "copperleaf"]
SERVICE = ["billing", "ingest", "reporting", "auth", "search", "payments", "notifier", "catalog", "scheduler", "exports",
           "gateway", "ledger", "invoicing", "telemetry"]
TECH = [("RabbitMQ", "Kafka"), ("Memcached", "Redis"), ("Buildkite", "Jenkins"), ("Prometheus", "Datadog"),
        ("SQLAlchemy", "Django ORM"), ("Celery", "Dramatiq"), ("Caddy", "Traefik"), ("Pulumi", "Ansible"),
        ("ClickHouse", "BigQuery"), ("Litestream", "Barman"), ("Vitess", "CockroachDB"), ("NATS", "ZeroMQ"),
        ("Meilisearch", "OpenSearch"), ("Grafana Loki", "Splunk"), ("Tailscale", "WireGuard"), ("Hatchet", "Airflow")]
REGION = ["eu-west-3", "us-east-1", "ap-southeast-2", "eu-north-1", "us-west-1", "ca-west-1", "me-central-1", "af-south-1"]
TLD = ["internal", "lan", "corp", "io", "net", "cloud"]
WORDS = ("alpha harbor delta river orchard ember falcon granite maple lantern summit quartz willow cobalt meadow "
         "beacon canyon cedar drift atlas vector prism nimbus ridge").split()
SECRET_SERVICES = ["STRIPE", "SENDGRID", "TWILIO", "MAPBOX", "ALGOLIA", "POSTMARK", "SEGMENT", "MAILGUN"]


@dataclass
class Vocab:
    first: list[str]
    last: list[str]
    company: str
    services: list[str]
    tech: list[tuple[str, str]]
    regions: list[str]
    words: list[str]


def _vocab(rng: random.Random, pool: str) -> Vocab:
    return Vocab(_split(FIRST, pool), _split(LAST, pool), rng.choice(_split(COMPANY, pool)), _split(SERVICE, pool),
                 _split(TECH, pool), _split(REGION, pool), _split(WORDS, pool))


# ---------------------------------------------------------------- fact kinds

@dataclass
class Kind:
    """How one kind of fact is made, said and asked about.

    ``say``: sentences stating it ({v} value, {topic}/{Topic} what it is about,
    {alt} the rejected option of a decision); ``ask``: questions about it;
    ``key``: the key it has in a config file or a log line; ``command``:
    commands that carry it (empty when no command would)."""

    name: str
    topics: list[str]
    say: list[str]
    ask: list[str]
    key: str
    command: list[str] = field(default_factory=list)


KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("user_name", [""], [
        "My name is {v}, by the way.", "I'm {v}, I look after the infrastructure here.",
        "{v} here, I'm on call this week.", "Hi, this is {v} from the data team.",
        "You can call me {v}.", "Quick intro: {v}, I run operations for the team.",
        "I'm {v} and I'll be your main contact.", "Name's {v}; I own this project now.",
    ], ["What's my name?", "Do you remember my name?", "Remind me, what name did I give you?",
        "By the way, who am I?", "What did I say my name was?", "And what is my name again?"], "owner_name"),
    Kind("person", ["the release approval", "the billing service", "the database migration", "on-call escalation",
                    "the vendor contract", "the security review", "the data retention policy", "the new API design"], [
        "{v} has to approve {topic}.", "{Topic} is owned by {v}.", "Talk to {v} about {topic}.",
        "For {topic}, the contact is {v}.", "{v} signs off on {topic}.", "Sign-off for {topic} comes from {v}.",
        "{v} is responsible for {topic}.", "Anything about {topic} goes through {v}.",
    ], ["Who approves {topic}?", "Who is the contact for {topic}?", "Who owns {topic}?", "Whom do I ask about {topic}?",
        "Who is responsible for {topic}?", "Who signs off on {topic}?"], "owner"),
    Kind("port", ["the database", "the admin API", "the metrics exporter", "the staging gateway", "the Redis cache",
                  "the gRPC service", "the message broker", "the debug server"], [
        "{Topic} listens on port {v}.", "{Topic} runs on port {v}.", "We moved {topic} to port {v}.",
        "Use port {v} for {topic}.", "{Topic} is bound to port {v}.", "{Topic} is on {v}, not the default port.",
        "Note that {topic} uses port {v}.", "Port {v} is {topic}.",
    ], ["Which port does {topic} use?", "What port is {topic} on?", "On which port does {topic} listen?",
        "What's the port of {topic}?", "Remind me of the port for {topic}?"], "port",
        ["nc -zv localhost {v}", "ss -ltnp 'sport = :{v}'", "curl -s http://127.0.0.1:{v}/health", "lsof -i :{v}"]),
    Kind("host", ["the primary database", "the build server", "the staging box", "the cache cluster", "the VPN gateway",
                  "the backup target", "the CI runner", "the mail relay"], [
        "{Topic} is {v}.", "{Topic} lives on {v}.", "Connect to {v} for {topic}.", "{Topic} moved to {v} last week.",
        "{Topic} runs on the machine {v}.", "The hostname of {topic} is {v}.", "We point {topic} at {v}.",
        "{Topic}? That's {v}.",
    ], ["What's the hostname of {topic}?", "Which host is {topic} on?", "Where does {topic} run?",
        "What machine is {topic}?", "Which server is {topic}?"], "host",
        ["ssh deploy@{v}", "ping -c 3 {v}", "dig +short {v}", "scp build.tar.gz ops@{v}:/tmp/"]),
    Kind("ip", ["the load balancer", "the bastion host", "the NFS server", "the DNS resolver", "the printer",
                "the office router"], [
        "{Topic} has the address {v}.", "{Topic} is at {v}.", "The IP of {topic} is {v}.",
        "{Topic} answers on {v}.", "We gave {topic} the static IP {v}.", "{Topic}: {v}.",
    ], ["What's the IP address of {topic}?", "What address does {topic} have?", "Which IP is {topic}?",
        "What's {topic}'s IP?"], "address", ["ping -c 2 {v}", "traceroute {v}", "ssh admin@{v}"]),
    Kind("version", ["PostgreSQL", "the Python runtime", "the SDK", "Kubernetes", "Node", "the client library",
                     "Terraform", "the base image"], [
        "We're on {topic} {v}.", "{Topic} is pinned to {v}.", "Everything runs {topic} {v} now.",
        "Keep {topic} at {v}; newer releases broke the build.", "We upgraded {topic} to {v} on Monday.",
        "{Topic} version: {v}.", "Stay on {topic} {v} until the fix lands.", "Production has {topic} {v}.",
    ], ["Which version of {topic} are we on?", "What {topic} version did we pin?", "Which {topic} release do we run?",
        "What version is {topic}?", "Which {topic} version should I use?"], "version",
        ["pip install 'sdk=={v}'", "docker pull registry/app:{v}", "git checkout tags/v{v}", "asdf install terraform {v}"]),
    Kind("path", ["the override config", "the backup directory", "the TLS certificate", "the cron script",
                  "the log file", "the deploy key", "the seed data"], [
        "{Topic} is at {v}.", "{Topic} lives in {v}.", "You'll find {topic} under {v}.", "We keep {topic} in {v}.",
        "{Topic} was moved to {v}.", "The path of {topic} is {v}.", "Look in {v} for {topic}.",
        "{Topic} sits at {v} on the box.",
    ], ["Where is {topic}?", "What's the path of {topic}?", "Where do we keep {topic}?", "Which file is {topic}?",
        "Where did {topic} go?"], "path", ["cat {v}", "ls -la {v}", "stat {v}", "sudo chmod 600 {v}"]),
    Kind("url", ["the runbook", "the status dashboard", "the design doc", "the staging app", "the incident board",
                 "the API docs"], [
        "{Topic} is at {v}", "Bookmark {v}, it's {topic}.", "{Topic}: {v}", "Here's {topic}: {v}",
        "{Topic} lives at {v} now.", "Use {v} for {topic}.",
    ], ["What's the link to {topic}?", "Where is {topic}?", "Which URL is {topic}?", "What's the address of {topic}?",
        "Can you give me {topic} link again?"], "url", ["curl -sI {v}", "open {v}", "wget -q -O - {v}"]),
    Kind("email", ["release notes", "alerts", "the vendor", "security reports", "invoices", "the weekly digest"], [
        "Send {topic} to {v}.", "{Topic} go to {v}.", "The address for {topic} is {v}.", "Mail {topic} to {v}.",
        "We route {topic} to {v}.", "{Topic}: {v}, nobody else.",
    ], ["Which address gets {topic}?", "Where do {topic} go?", "What's the email for {topic}?",
        "Who do we mail {topic} to?"], "email"),
    Kind("date", ["the cut-over", "the launch", "the code freeze", "the audit", "the contract renewal",
                  "the data center move", "the board review"], [
        "{Topic} is on {v}.", "{Topic} is scheduled for {v}.", "We moved {topic} to {v}.",
        "{Topic} happens on {v}, don't book anything else.", "Mark {v} for {topic}.", "{Topic} date: {v}.",
        "{Topic} is set for {v}.", "Plan for {topic} on {v}.",
    ], ["When is {topic}?", "What date is {topic}?", "When did we schedule {topic}?", "On which day is {topic}?",
        "What's the date of {topic}?"], "date"),
    Kind("time", ["the maintenance window", "the nightly backup", "the daily standup", "the batch import",
                  "the certificate rotation"], [
        "{Topic} starts at {v}.", "{Topic} runs at {v}.", "We do {topic} at {v}.", "{Topic} is at {v} every day.",
        "Moved {topic} to {v}.", "{Topic}: {v}.",
    ], ["What time is {topic}?", "When does {topic} start?", "At what time does {topic} run?",
        "When do we do {topic}?"], "time"),
    Kind("quantity", ["the memory limit", "the request timeout", "the rate limit", "the retention period",
                      "the disk quota", "the monthly budget", "the replica count", "the error budget",
                      "the batch size", "the p99 latency target"], [
        "{Topic} is {v}.", "We set {topic} to {v}.", "{Topic} should stay at {v}.", "Let's cap {topic} at {v}.",
        "{Topic} is now {v}.", "Agreed: {topic} of {v}.", "Bump {topic} to {v}.", "{Topic}: {v}, final.",
    ], ["What's {topic}?", "What did we set {topic} to?", "How much is {topic}?", "What value did we agree for {topic}?",
        "What's {topic} again?"], "limit"),
    Kind("ticket", ["the migration", "the outage", "the refactor", "the flaky tests", "the customer complaint",
                    "the upgrade"], [
        "{Topic} is tracked in {v}.", "File everything about {topic} under {v}.", "{v} is the ticket for {topic}.",
        "Link {topic} work to {v}.", "I opened {v} for {topic}.", "{Topic}: see {v}.",
    ], ["Which ticket tracks {topic}?", "What's the ticket for {topic}?", "Where do I file {topic} work?",
        "What issue number is {topic}?"], "ticket"),
    Kind("commit", ["the regression", "the hotfix", "the last good build", "the schema change", "the revert"], [
        "{Topic} came in with {v}.", "{Topic} is commit {v}.", "git bisect says {v} is {topic}.",
        "{Topic} is in {v}.", "Commit {v} is {topic}.", "{Topic} landed as {v}.",
    ], ["Which commit is {topic}?", "What was the commit for {topic}?", "Which revision is {topic}?",
        "What's the sha of {topic}?"], "commit", ["git show {v}", "git revert {v}", "git log -1 {v}"]),
    Kind("identifier", ["our AWS account", "the test customer", "the GCP project", "the Stripe account",
                        "the support contract", "the license"], [
        "{Topic} ID is {v}.", "{Topic} is {v}.", "Use {v} as {topic}.", "The ID of {topic} is {v}.",
        "{Topic} has the id {v}.", "{Topic}: {v}.",
    ], ["What's the ID of {topic}?", "Which ID is {topic}?", "What's {topic}'s identifier?",
        "What ID did we use for {topic}?"], "id"),
    Kind("decision", ["the job queue", "the cache", "the CI system", "the metrics stack", "the ORM", "the task runner",
                      "the reverse proxy", "infrastructure as code", "the analytics store", "backups"], [
        "For {topic} we'll go with {v} instead of {alt}.", "Decision: {v} for {topic}, not {alt}.",
        "We dropped {alt}; {topic} will use {v}.", "{v} wins for {topic}; {alt} is out.",
        "Let's use {v} for {topic} rather than {alt}.", "We settled on {v} over {alt} for {topic}.",
        "{Topic}: {v}. {alt} was ruled out.", "Final call on {topic}: {v}, not {alt}.",
    ], ["What did we pick for {topic}?", "Which option did we choose for {topic}?",
        "What are we using for {topic} instead of {alt}?", "What did we decide for {topic}?",
        "Which tool did we settle on for {topic}?"], "choice"),
    Kind("thing_name", ["the S3 bucket for exports", "the release branch", "the Kubernetes namespace", "the job queue",
                        "the feature flag", "the project codename", "the Slack channel", "the database schema"], [
        "{Topic} is {v}.", "We named {topic} {v}.", "Call {topic} {v}.", "{Topic}: {v}.",
        "{Topic} is called {v}.", "I created {topic} as {v}.", "Use {v} for {topic}.", "{Topic} will be {v}.",
    ], ["What's {topic} called?", "What's the name of {topic}?", "Which name did we give {topic}?",
        "What did we call {topic}?"], "name", ["aws s3 ls s3://{v}/", "git checkout {v}", "kubectl -n {v} get pods"]),
    Kind("region", ["the new cluster", "backups", "the disaster recovery site", "the EU customers", "the analytics jobs"], [
        "{Topic} goes to {v}.", "{Topic} will live in {v}.", "We host {topic} in {v}.", "{Topic}: region {v}.",
        "Put {topic} in {v}.", "{Topic} run in {v}.",
    ], ["Which region is {topic} in?", "Where do we host {topic}?", "What region did we pick for {topic}?"], "region",
        ["aws --region {v} ec2 describe-instances", "gcloud config set compute/region {v}"]),
    Kind("credential", ["the payment provider", "the mail service", "the SMS gateway", "the maps API"], [
        "The key for {topic} is in {v}={secret}.", "I exported {v}={secret} for {topic}.",
        "{Topic} reads {v} (currently {secret}).", "Set {v}={secret} before you call {topic}.",
    ], ["Which environment variable holds the key for {topic}?", "Where does {topic} get its key from?",
        "What's the variable for {topic}'s credential?"], "env"),
]}


def _value(kind: str, rng: random.Random, vocab: Vocab, topic: str) -> tuple[str, str, str | None]:
    """(value, alt, secret) of a fact of this kind; values are built to be unique in a conversation."""
    c = vocab.company
    w = rng.choice(vocab.words)
    if kind == "user_name":
        return rng.choice(vocab.first), "", None
    if kind == "person":
        return f"{rng.choice(vocab.first)} {rng.choice(vocab.last)}", "", None
    if kind == "port":
        return str(rng.randint(20, 64) * 1000 + rng.randint(101, 989)), "", None
    if kind == "host":
        return rng.choice([f"{rng.choice(vocab.services)}-{rng.randint(2, 39):02d}.{c}.{rng.choice(TLD)}",
                           f"{w}{rng.randint(2, 9)}.{rng.choice(vocab.regions)}.{c}-ops.net",
                           f"{w}-{rng.choice(['db', 'ci', 'vpn', 'mx'])}.{c}.{rng.choice(TLD)}"]), "", None
    if kind == "ip":
        return rng.choice([f"10.{rng.randint(20, 250)}.{rng.randint(1, 250)}.{rng.randint(2, 250)}",
                           f"172.{rng.randint(16, 31)}.{rng.randint(1, 250)}.{rng.randint(2, 250)}",
                           f"192.168.{rng.randint(2, 250)}.{rng.randint(2, 250)}"]), "", None
    if kind == "version":
        return rng.choice([f"{rng.randint(11, 17)}.{rng.randint(1, 9)}", f"3.{rng.randint(10, 13)}.{rng.randint(1, 12)}",
                           f"{rng.randint(1, 5)}.{rng.randint(10, 40)}.{rng.randint(0, 9)}",
                           f"v{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(1, 20)}",
                           f"{rng.randint(18, 23)}.{rng.randint(1, 12)}.{rng.randint(0, 5)}-rc{rng.randint(1, 4)}"]), "", None
    if kind == "path":
        s = rng.choice(vocab.services)
        return rng.choice([f"/etc/{c}/{s}/{w}-overrides.yaml", f"/var/backups/{s}/{w}-nightly",
                           f"/opt/{s}/certs/{w}.pem", f"~/scripts/{w}_{s}_sync.sh", f"/var/log/{s}/{w}.log",
                           f"/srv/{c}/{s}/seed_{w}.sql"]), "", None
    if kind == "url":
        return f"https://{rng.choice(['wiki', 'status', 'docs', 'grafana', 'notion'])}.{c}.{rng.choice(['io', 'com', 'dev'])}/" \
               f"{rng.choice(['p', 'd', 'page'])}/{''.join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(6))}-{w}", "", None
    if kind == "email":
        return f"{rng.choice(['ops', 'release', 'alerts', 'finance', 'security', 'vendors'])}-{w}@{c}.{rng.choice(['com', 'io', 'org'])}", "", None
    if kind == "date":
        month = rng.randint(1, 12)
        day = rng.randint(1, 28)
        names = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                 "November", "December"]
        return rng.choice([f"2027-{month:02d}-{day:02d}", f"{names[month - 1]} {day}, 2027", f"{day} {names[month - 1]} 2027",
                           f"{names[month - 1][:3]} {day}"]), "", None
    if kind == "time":
        return rng.choice([f"{rng.randint(0, 23):02d}:{rng.choice([5, 15, 25, 35, 45, 55]):02d} UTC",
                           f"{rng.randint(1, 11)}:{rng.choice([10, 20, 40, 50])} {rng.choice(['am', 'pm'])} {rng.choice(['CET', 'EST', 'PST'])}"]), "", None
    if kind == "quantity":
        return rng.choice([f"{rng.randint(3, 31) * 128} MiB", f"{rng.randint(2, 96)} GiB", f"{rng.randint(11, 95) * 10} ms",
                           f"{rng.randint(7, 170)} seconds", f"{rng.randint(3, 90) * 10} requests per minute",
                           f"{rng.randint(8, 400)} days", f"{rng.randint(2, 40)} TB", f"${rng.randint(2, 48)},{rng.randint(100, 999)}",
                           f"{rng.randint(3, 19)} replicas", f"{rng.randint(1, 9)}.{rng.randint(1, 9)}%",
                           f"{rng.randint(3, 60) * 50} rows"]), "", None
    if kind == "ticket":
        return f"{rng.choice(['OPS', 'INC', 'PLAT', 'DATA', 'SEC', 'CORE', 'WEB'])}-{rng.randint(1000, 9999)}", "", None
    if kind == "commit":
        return "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice([7, 9, 10, 12]))), "", None
    if kind == "identifier":
        return rng.choice([f"{rng.randint(1, 9)}{''.join(rng.choice(string.digits) for _ in range(11))}",
                           f"cus_{''.join(rng.choice(string.ascii_letters + string.digits) for _ in range(10))}",
                           f"{w}-{rng.choice(vocab.services)}-{rng.randint(100, 999)}",
                           f"LIC-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"]), "", None
    if kind == "decision":
        chosen, alt = rng.choice(vocab.tech)
        return chosen, alt, None
    if kind == "thing_name":
        s = rng.choice(vocab.services)
        return rng.choice([f"{c}-{s}-exports-{rng.randint(2, 9)}", f"release/2027.{rng.randint(1, 12):02d}-{w}",
                           f"{s}-{w}-canary", f"{s}-jobs-{w}-v{rng.randint(2, 9)}", f"enable_{w}_{s}_v{rng.randint(2, 5)}",
                           f"Project {w.title()}{rng.choice(['', ' Two', ' Prime'])}", f"#{s}-{w}-war-room",
                           f"{s}_{w}_v{rng.randint(2, 9)}"]), "", None
    if kind == "region":
        return rng.choice(vocab.regions), "", None
    if kind == "credential":
        service = rng.choice(SECRET_SERVICES)
        name = f"{service}_{rng.choice(['API_KEY', 'SECRET_KEY', 'TOKEN', 'AUTH_TOKEN'])}"
        secret = rng.choice(["sk_live_", "tok_", "key-", ""]) + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(28))
        return name, "", secret
    raise ValueError(kind)


@dataclass
class Fact:
    kind: str
    value: str  # what must survive (for a credential: its name)
    topic: str
    carrier: str
    question: str
    alt: str = ""
    secret: str | None = None  # a credential's value: must NOT survive
    message_index: int = -1


# ---------------------------------------------------------------- carriers

CARRIERS = ("user_prose", "user_code", "user_paste", "assistant_prose", "assistant_long", "tool_input", "tool_config",
            "tool_log", "tool_json", "tool_table", "tool_code")
SHAPE_CARRIERS = {
    "prose": {"user_prose": 5, "assistant_prose": 4, "assistant_long": 3, "user_paste": 1, "user_code": 1},
    "code": {"user_code": 4, "tool_code": 4, "user_prose": 3, "assistant_prose": 2, "assistant_long": 1, "tool_config": 2,
             "tool_input": 1},
    "tools": {"tool_config": 3, "tool_log": 3, "tool_json": 3, "tool_table": 2, "tool_input": 3, "user_prose": 2,
              "assistant_prose": 1},
    "mixed": {c: 1 for c in CARRIERS},
    "tool_loop": {c: 1 for c in CARRIERS},
}
_PROSE_ONLY = {"user_name", "decision", "credential"}  # kinds said in words, not found in files or logs

_USER_LEADS = [
    "Some context before we start.", "Before I forget:", "One more thing.", "Also, for the record:",
    "Quick note.", "FYI.", "Right, background first.", "Heads up.", "Context for later:", "Small detail:",
]
_ASSISTANT_LEADS = [
    "Understood.", "Got it, I'll keep that in mind.", "I checked the setup.", "Here's what I found.",
    "Noted.", "I looked into it.", "Thanks, that helps.", "I went through the configuration.",
]
_LONG_HEADINGS = [
    ("## Summary", "## Changes", "## Rollout", "## Risks"), ("### Plan", "### Steps", "### Checks", "### Open questions"),
    ("**What changed**", "**Why**", "**How to test**", "**Follow-ups**"), ("# Proposal", "## Design", "## Migration", "## Notes"),
]
_LONG_SENTENCES = [
    "This change moves the retry policy into a single module so every client behaves the same way.",
    "The old code path stays behind a flag for one release, then we delete it.",
    "Tests cover the happy path, timeouts, and the partial-failure case we saw last month.",
    "Nothing in the public interface changes; callers keep working without edits.",
    "We measured the new path on staging for two days before proposing it.",
    "The migration is reversible: the down step restores the previous columns from the shadow table.",
    "Monitoring gets two new panels, one for queue depth and one for consumer lag.",
    "I kept the diff small on purpose so it is easy to review and easy to revert.",
    "Error messages now say which setting to change instead of printing a stack trace.",
    "Documentation is updated in the same pull request, including the operations guide.",
    "Rolling out happens in three waves, ten, fifty and then one hundred percent of traffic.",
    "If the error rate rises above the usual level during a wave, we stop and roll back.",
    "The background job that cleans stale sessions now runs in its own worker pool.",
    "Config loading validates every field at startup, so a typo fails fast instead of at midnight.",
    "The cache key now includes the tenant, which fixes the cross-tenant leak reported earlier.",
    "We still need a decision on how long to keep the audit records around.",
]
_TALK_USER = [
    "Can you look at why the nightly export takes so long?", "Let's refactor the retry logic, it's a mess.",
    "What do you think about splitting the worker into two processes?", "Please review this approach before I merge.",
    "The tests are flaky again, any idea why?", "Can you explain how the scheduler picks the next job?",
    "I want to clean up the config loading code.", "How should we structure the error handling here?",
    "Let's go through the deployment steps together.", "Could you write a short plan for the cleanup?",
    "ok, what next?", "Sounds good, continue.", "Hmm, not sure about that. Alternatives?", "Great, thanks.",
    "Let's also think about monitoring.", "Why does the build take twelve minutes now?",
]
_TALK_ASSISTANT = [
    "The slow part is the serialisation step: every record is converted twice, once for validation and once for output.",
    "I'd keep one process and add a bounded worker pool; splitting buys isolation but doubles the operational work.",
    "The flaky test depends on wall-clock time. Injecting a clock makes it deterministic.",
    "The scheduler keeps a heap ordered by due time and pops the earliest job whose dependencies are done.",
    "Config loading happens in three places today. Moving it into one function that validates everything is the first step.",
    "For error handling I'd separate expected failures, which get a clear message, from bugs, which should crash loudly.",
    "The deployment has four steps: build the image, run migrations, shift traffic gradually, then clean up the old pods.",
    "Monitoring should cover latency, error rate and saturation first; everything else can come later.",
    "Most of the build time goes into installing dependencies without a cache. A lock file plus a cached layer fixes it.",
    "That function does too much: it parses input, talks to the database and formats the response. I'd split it in three.",
    "I agree with the direction. One caveat: the migration has to run before the new code is deployed.",
    "Let me summarise where we are: the refactor is done, tests pass locally, and the rollout plan needs review.",
]


def _code_file(rng: random.Random, vocab: Vocab, lines: int, planted: str | None = None) -> str:
    """A Python module (or, one time in three, JavaScript) with ``planted`` as one of its lines."""
    js = rng.random() < 0.33
    w = vocab.words
    out = ["import { retry } from './retry.js';", "import logger from './logger.js';", ""] if js else \
        ["import logging", "from dataclasses import dataclass", "", "log = logging.getLogger(__name__)", ""]
    while len(out) < lines:
        name = f"{rng.choice(w)}_{rng.choice(['load', 'sync', 'check', 'flush', 'apply', 'merge'])}"
        arg = rng.choice(["record", "batch", "items", "request", "ctx"])
        if js:
            out += [f"export async function {name}({arg}, options = {{}}) {{",
                    f"  const limit = options.limit ?? {rng.randint(2, 99)};",
                    f"  for (const item of {arg}.entries ?? []) {{",
                    f"    if (item.size > limit) logger.warn('{name}: item too large', item.id);",
                    f"    await retry(() => item.save(), {{ attempts: {rng.randint(2, 6)} }});",
                    "  }", f"  return {arg}.entries?.length ?? 0;", "}", ""]
        else:
            out += [f"def {name}({arg}, *, limit={rng.randint(2, 99)}):",
                    f'    """{rng.choice(["Load", "Check", "Apply", "Merge"])} the {rng.choice(w)} entries of a {arg}."""',
                    "    done = []",
                    f"    for item in {arg}.entries:",
                    "        if item.size > limit:",
                    f"            log.warning('{name}: item %s too large', item.id)",
                    "            continue",
                    f"        done.append(item.{rng.choice(['save', 'flush', 'commit'])}(timeout={rng.randint(1, 30)}))",
                    "    return done", ""]
    if planted:
        out.insert(rng.randint(3, min(12, len(out))), planted)
    return "\n".join(out)


def _log(rng: random.Random, vocab: Vocab, lines: int, planted: str | None = None) -> str:
    out = []
    for k in range(lines):
        level = rng.choices(["INFO", "DEBUG", "WARN", "ERROR"], [70, 15, 10, 5])[0]
        out.append(f"2026-12-0{rng.randint(1, 9)}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{k % 60:02d}.{rng.randint(0, 999):03d}Z "
                   f"{level:5} [{rng.choice(vocab.services)}] {rng.choice(['GET', 'POST', 'PUT'])} "
                   f"/api/v{rng.randint(1, 3)}/{rng.choice(vocab.words)} status={rng.choice([200, 200, 201, 204, 404, 500])} "
                   f"dur={rng.randint(2, 1900)}ms req={''.join(rng.choice('0123456789abcdef') for _ in range(10))}")
    if planted:
        out.insert(rng.randint(len(out) // 4, max(len(out) // 4, 3 * len(out) // 4)), planted)
    return "\n".join(out)


def _config_file(rng: random.Random, vocab: Vocab, fmt: str, planted: tuple[str, str] | None) -> str:
    keys = [("workers", rng.randint(2, 16)), ("log_level", rng.choice(["info", "debug", "warning"])),
            ("pool_size", rng.randint(5, 50)), ("cache_ttl_seconds", rng.randint(60, 3600)),
            ("feature_" + rng.choice(vocab.words), rng.choice(["true", "false"])), ("listen", "0.0.0.0:8080"),
            ("region", "local"), ("max_body_kb", rng.randint(64, 4096)), ("retry_attempts", rng.randint(2, 6)),
            ("tracing", rng.choice(["true", "false"]))]
    rng.shuffle(keys)
    if planted:
        keys.insert(rng.randint(1, len(keys)), planted)
    if fmt == "yaml":
        return "\n".join(f"{k}: {v}" for k, v in keys)
    if fmt == "toml":
        return "[service]\n" + "\n".join(f'{k} = "{v}"' if not str(v).isdigit() else f"{k} = {v}" for k, v in keys)
    if fmt == "env":
        return "\n".join(f"{k.upper()}={v}" for k, v in keys)
    return json.dumps({k: v for k, v in keys}, indent=2)


def _table(rng: random.Random, vocab: Vocab, planted: tuple[str, str] | None) -> str:
    rows = [("NAME", "STATUS", "VALUE", "AGE")]
    for _ in range(rng.randint(5, 14)):
        rows.append((f"{rng.choice(vocab.services)}-{rng.choice(vocab.words)}-{rng.randint(1, 9)}", rng.choice(["Running", "Ready", "Pending"]),
                     str(rng.randint(1, 99)), f"{rng.randint(1, 40)}d"))
    if planted:
        rows.insert(rng.randint(1, len(rows)), (planted[0], "Ready", planted[1], f"{rng.randint(1, 40)}d"))
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(4)]
    return "\n".join("".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _long_message(rng: random.Random, planted_sentence: str | None, sentences: int) -> str:
    headings = rng.choice(_LONG_HEADINGS)
    body = rng.sample(_LONG_SENTENCES, k=min(len(_LONG_SENTENCES), sentences))
    if planted_sentence:
        body.insert(rng.randint(1, len(body)), planted_sentence)
    parts, per = [], max(1, len(body) // len(headings))
    for i, heading in enumerate(headings):
        chunk = body[i * per:(i + 1) * per] if i < len(headings) - 1 else body[i * per:]
        bullets = rng.random() < 0.5
        parts.append(heading + "\n" + ("\n".join(f"- {s}" for s in chunk) if bullets else " ".join(chunk)))
    return "\n\n".join(parts)


# ---------------------------------------------------------------- the system prompt

_SYSTEM_PARTS = [
    "You are an engineering assistant embedded in a small infrastructure team. You help with code, operations and planning.",
    "Always answer in plain English. Prefer short paragraphs and concrete steps over long explanations.",
    "When you are unsure, say so and explain what you would check to find out.",
    "Never run destructive commands (dropping tables, deleting buckets, force-pushing) without explicit confirmation.",
    "Quote file paths and commands exactly as they appear, in backticks.",
    "Keep secrets out of your answers: refer to credentials by the name of the variable that holds them.",
    "When you change code, explain what changed and why, and mention the tests you ran.",
    "Respect the team's conventions: type hints everywhere, small functions, no global state, docstrings that explain why.",
    "For operational work, state the blast radius of a change and how to roll it back before doing it.",
    "If a request is ambiguous, ask one clarifying question rather than guessing.",
    "Tools: `bash` runs a shell command in the workspace and returns its output; commands time out after two minutes.",
    "Tools: `read_file` returns the contents of a file; `write_file` replaces a file; `search` greps the repository.",
    "Tools: `http_get` fetches a URL from the internal network and returns status, headers and body.",
    "Output format: when asked for a plan, give numbered steps; when asked for a review, list issues by severity.",
    "Escalation: incidents with customer impact go to the incident channel first, then to the on-call engineer.",
    "Style guide: use active voice, avoid jargon, define abbreviations the first time they appear.",
    "Testing policy: every bug fix comes with a test that fails before the fix and passes after it.",
    "Review checklist: correctness, error handling, logging, configuration, documentation, backwards compatibility.",
    "Security: validate all input at the boundary, never log request bodies, rotate credentials after any exposure.",
    "Performance: measure before optimising; include the numbers and how they were obtained in the pull request.",
]


def system_prompt(rng: random.Random, tokens: int) -> str:
    parts: list[str] = []
    section = 0
    while tok.estimate_text_tokens("\n".join(parts)) < tokens:
        section += 1
        picked = rng.sample(_SYSTEM_PARTS, k=rng.randint(4, 8))
        parts.append(f"## Section {section}: " + rng.choice(["Guidelines", "Tools", "Policies", "Conventions", "Workflow", "Notes"]))
        parts.extend(f"- {p}" for p in picked)
    return "\n".join(parts)


# ---------------------------------------------------------------- the builder


@dataclass
class Conversation:
    name: str
    pool: str
    shape: str
    system: str
    messages: list[dict]
    facts: list[Fact]

    @property
    def tokens(self) -> int:
        return tok.estimate_request_tokens(self.messages, self.system)


class _Builder:
    def __init__(self, rng: random.Random, vocab: Vocab, pool: str, shape: str, chunk_tokens: int):
        self.rng, self.vocab, self.pool, self.shape = rng, vocab, pool, shape
        self.chunk_tokens = chunk_tokens  # the largest pasted or returned output, roughly
        self.messages: list[dict] = []
        self.tool_counter = 0

    def add(self, role: str, content) -> int:
        if self.messages and self.messages[-1]["role"] == role:
            # two turns of one speaker in a row: join them (text only)
            last = self.messages[-1]
            last["content"] = _as_blocks(last["content"]) + _as_blocks(content)
            return len(self.messages) - 1
        self.messages.append({"role": role, "content": content})
        return len(self.messages) - 1

    def user(self, text: str) -> int:
        return self.add("user", text if self.rng.random() < 0.6 else [{"type": "text", "text": text}])

    def assistant(self, text: str) -> int:
        return self.add("assistant", [{"type": "text", "text": text}] if self.rng.random() < 0.7 else text)

    def tool(self, lead: str | None, name: str, tool_input: dict, output: str) -> tuple[int, int]:
        if self.messages and self.messages[-1]["role"] == "assistant":
            self.user(self.rng.choice(["ok", "go ahead", "sure", "please check"]))
        self.tool_counter += 1
        tool_id = f"toolu_{self.tool_counter:03d}{''.join(self.rng.choice(string.ascii_letters) for _ in range(8))}"
        blocks = ([{"type": "text", "text": lead}] if lead else []) + [{"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}]
        a = self.add("assistant", blocks)
        content = output if self.rng.random() < 0.7 else [{"type": "text", "text": output}]
        u = self.add("user", [{"type": "tool_result", "tool_use_id": tool_id, "content": content}])
        return a, u

    def lines(self, low: int, high: int, tokens_per_line: int) -> int:
        """A number of lines in [low, high], at most what makes one chunk."""
        high = max(low + 2, min(high, self.chunk_tokens // tokens_per_line))
        return self.rng.randint(low, high)

    # -- noise, by shape

    def noise(self) -> None:
        rng, v = self.rng, self.vocab
        weights = {
            "prose": {"talk": 6, "long": 3, "paste_code": 1, "read_code": 0, "log": 0, "config": 0, "json": 0, "tests": 0},
            "code": {"talk": 2, "long": 1, "paste_code": 4, "read_code": 4, "log": 1, "config": 1, "json": 0, "tests": 2},
            "tools": {"talk": 2, "long": 1, "paste_code": 0, "read_code": 1, "log": 4, "config": 2, "json": 3, "tests": 2},
        }.get(self.shape, {"talk": 3, "long": 2, "paste_code": 2, "read_code": 2, "log": 2, "config": 1, "json": 1, "tests": 1})
        kind = rng.choices(list(weights), list(weights.values()))[0]
        if self.messages and self.messages[-1]["role"] == "user" and kind not in ("talk", "long"):
            self.assistant(rng.choice(_TALK_ASSISTANT))
        if kind == "talk":
            if not self.messages or self.messages[-1]["role"] == "assistant":
                self.user(rng.choice(_TALK_USER))
            self.assistant(" ".join(rng.sample(_TALK_ASSISTANT, k=rng.randint(1, 4))))
        elif kind == "long":
            if not self.messages or self.messages[-1]["role"] == "assistant":
                self.user(rng.choice(["Can you write that up as a PR description?", "Write the plan down please.",
                                      "Summarise the proposal in detail.", "Draft the rollout notes."]))
            self.assistant(_long_message(rng, None, rng.randint(8, 16)))
        elif kind == "paste_code":
            self.user(rng.choice(["Here's the module, can you review it?", "This is what I have so far:",
                                  "Why is this slow?", "Can you spot the bug?"]) + "\n```\n" + _code_file(rng, v, self.lines(20, 90, 11)) + "\n```")
            self.assistant(rng.choice(_TALK_ASSISTANT))
        elif kind == "read_code":
            path = f"src/{rng.choice(v.services)}/{rng.choice(v.words)}.py"
            self.tool(rng.choice([None, "Let me read the file.", "Reading the module."]), "read_file", {"path": path},
                      _code_file(rng, v, self.lines(25, 140, 11)))
            self.assistant(rng.choice(_TALK_ASSISTANT))
        elif kind == "log":
            self.tool("Checking the logs.", "bash", {"command": f"journalctl -u {rng.choice(v.services)} -n 200"},
                      _log(rng, v, self.lines(15, 160, 38)))
            self.assistant(rng.choice(_TALK_ASSISTANT))
        elif kind == "config":
            fmt = rng.choice(["yaml", "toml", "env", "json"])
            self.tool(None, "read_file", {"path": f"config/{rng.choice(v.words)}.{fmt}"}, _config_file(rng, v, fmt, None))
            self.assistant(rng.choice(_TALK_ASSISTANT))
        elif kind == "json":
            items = [{"id": rng.randint(1, 99999), "name": f"{rng.choice(v.words)}-{rng.randint(1, 99)}", "state": rng.choice(["ok", "degraded"]),
                      "updated": f"2026-12-0{rng.randint(1, 9)}"} for _ in range(self.lines(3, 25, 30))]
            self.tool("Querying the API.", "http_get", {"url": f"http://localhost:8080/api/{rng.choice(v.words)}"},
                      json.dumps({"items": items}, indent=rng.choice([None, 2])))
            self.assistant(rng.choice(_TALK_ASSISTANT))
        else:
            tests = [f"tests/test_{rng.choice(v.words)}.py::test_{rng.choice(v.words)}_{i} PASSED" for i in range(self.lines(8, 40, 14))]
            self.tool("Running the tests.", "bash", {"command": "pytest -q"}, "\n".join(tests) + f"\n{len(tests)} passed in {rng.randint(2, 40)}.{rng.randint(10, 99)}s")
            self.assistant(rng.choice(_TALK_ASSISTANT))

    # -- planting

    def plant(self, fact: Fact) -> None:
        rng, v = self.rng, self.vocab
        kind = KINDS[fact.kind]
        topic = fact.topic
        fill = {"v": fact.value, "topic": topic, "Topic": topic[:1].upper() + topic[1:], "alt": fact.alt, "secret": fact.secret or ""}
        sentence = rng.choice(_split(kind.say, self.pool)).format(**fill)
        key = _key(kind, topic)
        carrier = fact.carrier
        if carrier == "user_prose":
            lead = rng.choice(_USER_LEADS) + " " if rng.random() < 0.5 else ""
            extra = " " + rng.choice(_TALK_USER) if rng.random() < 0.5 else ""
            fact.message_index = self.user(lead + sentence + extra)
            self.assistant(rng.choice(_ASSISTANT_LEADS) + " " + rng.choice(_TALK_ASSISTANT))
        elif carrier == "assistant_prose":
            if not self.messages or self.messages[-1]["role"] == "assistant":
                self.user(rng.choice(_TALK_USER))
            fact.message_index = self.assistant(rng.choice(_ASSISTANT_LEADS) + " " + sentence + " " + rng.choice(_TALK_ASSISTANT))
        elif carrier == "assistant_long":
            if not self.messages or self.messages[-1]["role"] == "assistant":
                self.user(rng.choice(["Write it up as a PR description.", "Give me the full plan.", "Document the change in detail."]))
            fact.message_index = self.assistant(_long_message(rng, sentence, rng.randint(8, 16)))
        elif carrier == "user_code":
            literal = _literal(fact.value)
            line = rng.choice([f"{key.upper()} = {literal}", f"{key} = {literal}  # {topic}", f"# {sentence}",
                               f"const {key.upper()} = {literal};"])
            if self.messages and self.messages[-1]["role"] == "user":
                self.assistant(rng.choice(_TALK_ASSISTANT))
            fact.message_index = self.user(rng.choice(["Here's my settings module:", "This is the script I use:",
                                                       "Current code, for reference:", "Can you check this file?"])
                                           + "\n```\n" + _code_file(rng, v, self.lines(15, 70, 11), line) + "\n```")
            self.assistant(rng.choice(_TALK_ASSISTANT))
        elif carrier == "user_paste":
            if self.messages and self.messages[-1]["role"] == "user":
                self.assistant(rng.choice(_TALK_ASSISTANT))
            planted = f"2026-12-03T09:14:02.551Z INFO  [{rng.choice(v.services)}] {key}={fact.value}"
            fact.message_index = self.user(rng.choice(["This is what I see in the logs:", "Output from the box:", "Pasting the log:"])
                                           + "\n" + _log(rng, v, self.lines(10, 60, 38), planted))
            self.assistant(rng.choice(_TALK_ASSISTANT))
        elif carrier == "tool_input":
            command = rng.choice(kind.command).format(v=fact.value)
            lead = rng.choice([f"Let me check {topic}.", f"Checking {topic}.", None, f"I'll look at {topic} now."])
            _, result = self.tool(lead, "bash", {"command": command}, rng.choice(["OK", "done", "(no output)", "exit status 0"]))
            fact.message_index = result - 1
            self.assistant(rng.choice(_TALK_ASSISTANT))
        elif carrier == "tool_config":
            fmt = rng.choice(["yaml", "toml", "env", "json"])
            _, fact.message_index = self.tool(rng.choice([None, "Reading the config."]), "read_file",
                                              {"path": f"config/{rng.choice(v.words)}-{len(self.messages)}.{fmt}"},
                                              _config_file(rng, v, fmt, (key, fact.value)))
            self.assistant(rng.choice(_TALK_ASSISTANT))
        elif carrier == "tool_log":
            planted = rng.choice([f"2026-12-02T06:00:01.002Z INFO  [{rng.choice(v.services)}] startup: {key}={fact.value}",
                                  f"2026-12-02T06:00:01.002Z INFO  [{rng.choice(v.services)}] loaded {key.replace('_', ' ')}: {fact.value}"])
            _, fact.message_index = self.tool("Looking at the startup logs.", "bash", {"command": f"journalctl -u {rng.choice(v.services)} --since today"},
                                              _log(rng, v, self.lines(30, 200, 38), planted))
            self.assistant(rng.choice(_TALK_ASSISTANT))
        elif carrier == "tool_json":
            payload = {"status": "ok", "data": {"id": rng.randint(1, 9999), key: fact.value, "updated_by": "automation",
                                                "revision": rng.randint(1, 400)}, "items": [{"n": i, "ok": True} for i in range(rng.randint(2, 12))]}
            _, fact.message_index = self.tool("Querying the settings API.", "http_get", {"url": f"http://localhost:8080/api/settings/{key}"},
                                              json.dumps(payload, indent=rng.choice([None, 2])))
            self.assistant(rng.choice(_TALK_ASSISTANT))
        elif carrier == "tool_table":
            _, fact.message_index = self.tool("Listing the resources.", "bash", {"command": "infra list --wide | grep -v Terminated"},
                                              _table(rng, v, (key, fact.value)))
            self.assistant(rng.choice(_TALK_ASSISTANT))
        elif carrier == "tool_code":
            literal = _literal(fact.value)
            line = rng.choice([f"{key.upper()} = {literal}", f"DEFAULT_{key.upper()} = {literal}  # {topic}"])
            _, fact.message_index = self.tool(None, "read_file", {"path": f"src/{rng.choice(v.services)}/settings_{len(self.messages)}.py"},
                                              _code_file(rng, v, self.lines(20, 90, 11), line))
            self.assistant(rng.choice(_TALK_ASSISTANT))
        else:
            raise ValueError(carrier)


def _as_blocks(content) -> list:
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def _key(kind: Kind, topic: str) -> str:
    words = [w for w in re.findall(r"[a-z0-9]+", topic.lower()) if w not in ("the", "our", "a", "for", "of", "new")]
    return "_".join(words[-2:] + ([kind.key] if kind.key not in words else [])) or kind.key


def _literal(value: str) -> str:
    return value if re.fullmatch(r"\d+(\.\d+)?", value) else json.dumps(value)


def _question_turn(rng: random.Random, pool: str, facts: list[Fact]) -> str:
    questions = [f.question for f in facts]
    rng.shuffle(questions)
    style = rng.choice(_split(["list", "paragraph", "list", "paragraph"], pool) + [rng.choice(["list", "paragraph"])])
    opener = rng.choice(_split([
        "Before we wrap up, some questions so I can write the hand-off note:",
        "Ok, quick quiz before I log off, answer from what we discussed:",
        "I need to fill in the ticket. Can you answer these from our conversation?",
        "Let me double-check a few details with you:",
        "Thanks. A few things I want to confirm:",
        "Before the meeting, remind me:",
        "Last thing, help me with these:",
        "Answer these from what we covered today, please:",
    ], pool))
    if style == "list":
        return opener + "\n" + "\n".join(f"- {q}" for q in questions)
    return opener + " " + " ".join(questions)


def generate(seed: int, pool: str = "dev", shape: str = "mixed", total_tokens: int = 12_000, system_tokens: int = 3_500,
             facts: int | None = None) -> Conversation:
    """One conversation of about ``total_tokens`` (system prompt included)."""
    if pool not in POOLS or shape not in SHAPES:
        raise ValueError(f"pool in {POOLS}, shape in {SHAPES}")
    rng = random.Random(f"{pool}/{shape}/{seed}")
    vocab = _vocab(rng, pool)
    system = system_prompt(rng, system_tokens)
    count = facts or max(4, min(16, (total_tokens - system_tokens) // 700))
    kinds = [k for k in KINDS if k != "user_name"]
    chosen_kinds = rng.sample(kinds, k=min(count - 1, len(kinds)))
    chosen_kinds.insert(0, "user_name") if rng.random() < 0.6 else chosen_kinds.append(rng.choice(kinds))
    carriers = SHAPE_CARRIERS[shape]
    planted: list[Fact] = []
    used_values: set[str] = set()
    used_topics: set[tuple[str, str]] = set()
    for kind_name in chosen_kinds:
        kind = KINDS[kind_name]
        topics = [t for t in _split(kind.topics, pool) or kind.topics if (kind_name, t) not in used_topics] or kind.topics
        topic = rng.choice(topics)
        used_topics.add((kind_name, topic))
        for _ in range(20):
            value, alt, secret = _value(kind_name, rng, vocab, topic)
            if value not in used_values and not any(value in u or u in value for u in used_values):
                break
        used_values.add(value)
        allowed = {c: w for c, w in carriers.items()
                   if not (kind_name in _PROSE_ONLY and c not in ("user_prose", "assistant_prose", "assistant_long"))
                   and not (c == "tool_input" and not kind.command)}
        carrier = rng.choices(list(allowed), list(allowed.values()))[0]
        fill = {"topic": topic, "Topic": topic[:1].upper() + topic[1:], "alt": alt}
        question = rng.choice(_split(kind.ask, pool) or kind.ask).format(**fill)
        planted.append(Fact(kind_name, value, topic, carrier, question, alt, secret))

    budget = total_tokens - system_tokens
    b = _Builder(rng, vocab, pool, shape, max(300, budget // 8))
    opener = rng.choice(_split(["Hi! I need help with our setup today.", "Morning. Let's continue with the migration work.",
                                "Hello, I have a few things to sort out with you.", "Hey, can you help me with the service?",
                                "Good afternoon. We have some cleanup to do.", "Hi there, new session, same project."], pool))
    first = planted[0] if planted[0].kind == "user_name" else None
    if first:
        first.carrier = "user_prose"
        sentence = rng.choice(_split(KINDS["user_name"].say, pool)).format(v=first.value, topic="", Topic="", alt="", secret="")
        first.message_index = b.user(opener + " " + sentence + " " + rng.choice(_TALK_USER))
        b.assistant(rng.choice(_ASSISTANT_LEADS) + " " + rng.choice(_TALK_ASSISTANT))
    else:
        b.user(opener + " " + rng.choice(_TALK_USER))
        b.assistant(rng.choice(_TALK_ASSISTANT))
    rest = [f for f in planted if f is not first]
    # facts go into the first 55% of the messages' tokens, noise around them
    plant_until = 0.55 * budget
    schedule = sorted(rng.uniform(0.05, 1.0) * plant_until for _ in rest)
    pending = list(zip(schedule, rest))
    size = tok.estimate_request_tokens(b.messages)
    while size < budget - 250 or pending:
        if pending and size >= pending[0][0]:
            b.plant(pending.pop(0)[1])
        else:
            b.noise()
        size = tok.estimate_request_tokens(b.messages)
    if b.messages[-1]["role"] == "user":
        b.assistant(rng.choice(_TALK_ASSISTANT))
    ask = _question_turn(rng, pool, planted)
    if shape == "tool_loop":
        b.user(ask)
        b.tool(rng.choice(["Let me check the current state first.", "I'll verify against the live system."]), "bash",
               {"command": "infra status --all"}, _table(rng, vocab, None))
    else:
        b.user(ask)
    convo = Conversation(f"{pool}/{shape}/{seed}", pool, shape, system, b.messages, planted)
    _check(convo)
    return convo


def _check(convo: Conversation) -> None:
    """Every fact is stated where it was planted, and nowhere the pruner keeps anyway
    (the system prompt, the final user turn), so that keeping it is the pruner's doing."""
    final = plain_text(convo.messages[-3:] if convo.shape == "tool_loop" else convo.messages[-1:])
    for f in convo.facts:
        stated = plain_text([convo.messages[f.message_index]])
        assert f.value in stated, (convo.name, f)
        assert f.value not in convo.system and f.value not in final, (convo.name, f.value)


def facts_kept(convo: Conversation, messages: list[dict]) -> dict:
    """Which planted facts survive in ``messages`` (the system prompt is sent as it was, and
    holds none of them), and which credential values leaked."""
    text = plain_text(messages)
    kept = [f for f in convo.facts if f.value in text]
    return {
        "facts": len(convo.facts),
        "kept": len(kept),
        "lost": [(f.kind, f.carrier, f.value) for f in convo.facts if f not in kept],
        "leaked": [f.value for f in convo.facts if f.secret and f.secret in text],
    }


def generate_many(count: int, pool: str, shapes=SHAPES, seed: int = 0, total=(6_000, 20_000), system=(2_000, 5_000)) -> list[Conversation]:
    """``count`` conversations per shape with sizes and system prompts drawn from the ranges."""
    rng = random.Random(f"many/{pool}/{seed}")
    out = []
    for shape in shapes:
        for i in range(count):
            system_tokens = rng.randint(*system)
            total_tokens = max(system_tokens + 3_000, rng.randint(*total))
            out.append(generate(seed * 1000 + i, pool, shape, total_tokens, system_tokens))
    return out
