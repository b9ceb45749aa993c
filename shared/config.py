"""The one config object: everything ganforge reads from the environment is read here.

Every other module receives a `Settings` instead of calling `os.environ`, so that the embedded
defaults (SQLite, a local artifact folder, a file-system broker) and a real deployment
(PostgreSQL, Redis, S3) differ only in environment variables.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from shared.datafiles.roots import parse_roots
from shared.setting_fields import (
    ConfigError,
    Variable,
    int_at_least,
    on_off,
    positive_float,
    setting,
)
from shared.webhooks.addresses import IPNetwork, parse_networks

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the backport
    import tomli as tomllib

# Where the embedded mode keeps its database, artifacts, broker folder and local token, when
# GANFORGE_HOME is not set: a per-user folder, so two checkouts share one local service.
DEFAULT_HOME = Path.home() / ".ganforge"

# Where the embedded mode's API listens and where the CLI looks when nothing else says.
DEFAULT_API_URL = "http://127.0.0.1:8765"

# The CLI's own settings, in GANFORGE_HOME: `url` and `token`, for a laptop that talks to the
# lab's service without exporting variables in every shell.
CLIENT_CONFIG_FILE = "config.toml"
CLIENT_CONFIG_KEYS = ("url", "token")
# The embedded mode's local token, in GANFORGE_HOME, that the CLI finds by itself.
TOKEN_FILE = "token"
# Where `ganforge up` / `demo` write the URL they serve at (`--port` may move it), so later
# commands on this machine find the embedded service without being told.
EMBEDDED_URL_FILE = "embedded-url"

# Seconds between progress writes to the database: often enough that a poller sees movement,
# rare enough that a 100-steps/s job does not turn the database into its bottleneck.
DEFAULT_PROGRESS_INTERVAL_S = 2.0

# Redis redelivers an unacknowledged message after this many seconds. acks_late tasks run as
# long as training does, so the timeout must exceed the longest job we accept; duplicates that
# still arrive are dropped by the compare-and-set claim in the database.
DEFAULT_VISIBILITY_TIMEOUT_S = 7 * 24 * 3600

# How long a cancelled run may take to stop cooperatively before its process group is killed
# (torchrun waits 30 s, Ray 3 s; a training step here is far below a second).
DEFAULT_CANCEL_GRACE_S = 15.0

# A node silent this long is dead and its jobs are requeued. Workers heartbeat every few
# seconds (a third of this at most), so 30 s is several missed beats, not one slow write.
DEFAULT_NODE_TIMEOUT_S = 30.0

# A job placed on a node whose worker has not taken its message after this long (the broker
# lost it, the scheduler died between commit and send) is requeued. An idle worker takes a
# message within milliseconds; a busy broker or a worker still starting, within seconds.
DEFAULT_CLAIM_TIMEOUT_S = 60.0

# A running job whose supervisor has written nothing (heartbeat, progress) for this long is
# lost and requeued. A dead *node* is found sooner (GANFORGE_NODE_TIMEOUT_S); this catches a
# supervisor that hangs while its node still heartbeats. Heartbeats come every 10 s.
DEFAULT_JOB_SILENCE_S = 90.0

# How long a worker retries a store that cannot be reached (refused, timed out, 5xx) before
# the attempt is lost: an S3 restart or failover takes seconds to minutes.
DEFAULT_STORAGE_RETRY_S = 15 * 60.0

# Requests per minute per token: a CLI polling every second or a dashboard uses well under
# 100; 1,200 lets scripts burst while a runaway loop is cut off before it starves the API.
DEFAULT_RATE_LIMIT_PER_MINUTE = 1200

# Fair share looks back over recent use: a device-second counts half after this many seconds.
# A day: yesterday's week-long run weighs on today's queue, last month's does not.
DEFAULT_USAGE_HALF_LIFE_S = 24 * 3600.0

# A job is tried this many times in all (first run plus requeues after lost/preempted).
DEFAULT_MAX_ATTEMPTS = 3

# A running job's new log lines wait at most this long before its log.txt and metrics.jsonl
# are uploaded (in the background): a person following the log sees lines within seconds,
# while a job logging a line per step still uploads once per interval, not once per line.
DEFAULT_LOG_FLUSH_S = 5.0

# Seconds between scheduler passes when nothing wakes it: the API and the workers wake it over
# Redis when a job is submitted, cancelled or ends, so this only bounds what a lost wake-up
# (or the embedded broker, which carries none) costs.
DEFAULT_SCHEDULER_POLL_S = 0.5

# Generators each device's warm sampler keeps loaded: a few checkpoints a person samples from
# in turn; a DCGAN's weights are megabytes, so four are nothing next to a device's memory.
DEFAULT_SAMPLER_CACHE = 4

# A worker node's cache of unpacked code bundles (worker/bundles.py), in MiB: ten bundles at
# the largest a bundle may unpack to (200 MiB), hundreds of typical ones; the least recently
# used go first past it.
DEFAULT_CODE_CACHE_MB = 2048

# A worker node's cache of dataset shards (worker/agent/shard_cache.py), in bytes: a fixed
# figure, not a share of free disk, so a node's behaviour does not change with what else
# lies on its disk. 64 GiB holds several datasets past the 1 GiB at which uploads are sharded
# (ImageNet at 64 px is ~12 GB of PNG); a dataset larger than the bound is refused by name.
DEFAULT_SHARD_CACHE_BYTES = 64 * 1024**3

# The scheduler sweeps checkpoints a job's `keep_checkpoints` no longer keeps this often: a
# run checkpoints every few minutes at most, and each sweep touches a bounded number of jobs.
DEFAULT_RETENTION_INTERVAL_S = 300.0
# The orphan collector lists every object under jobs/, so it runs hourly; an object is an
# orphan only a day after it was written, far past any upload whose row is still coming.
DEFAULT_ORPHAN_INTERVAL_S = 3600.0
DEFAULT_ORPHAN_GRACE_S = 24 * 3600.0

# Request threads per API process (gunicorn's `--threads`, cli/embedded.py). Each
# Server-Sent Events stream holds one while it is open.
DEFAULT_API_THREADS = 8

# Event streams one token may hold open across every API process: a person following a few
# jobs at once (a dashboard tab, `watch`, `logs -f` each); more is a script that should poll.
DEFAULT_STREAMS_PER_TOKEN = 4


# A webhook delivery that finds no receiver answering 2xx is retried, backing off, for this
# long after its event, then marked failed: a receiver down for a day has missed the news.
DEFAULT_WEBHOOK_RETRY_S = 24 * 3600.0
# Delivered and failed deliveries (and their attempts) are removed this long after their
# event: a month answers "did my receiver get last week's news?", and an owner sees the
# latest 50 per webhook anyway; older rows would only grow the table.
DEFAULT_WEBHOOK_HISTORY_S = 30 * 24 * 3600.0

# The account job processes run as when the worker is root: unprivileged, owning no files.
DEFAULT_JOB_USER = "nobody"


def _half_the_threads(read: dict[str, Any]) -> int:
    """Streams an API process serves at once unless told: half its threads, so that however
    many clients ask for streams, the other half always answer ordinary requests."""
    return int(read["api_threads"]) // 2


# How the API, scheduler and worker write their own log records: `text` for people, `json`
# (one object per line) for a log collector.
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build it with `Settings.from_env()`; tests use `replace()`.

    Each field declares its variable, parser and default once (`setting`), and `from_env` and
    `to_env` both walk these fields: a setting cannot be read here yet lost on its way to a
    worker's child process."""

    home: Path = setting(  # noqa: RUF009 (`setting` returns a dataclasses.Field, as `field` does)
        "GANFORGE_HOME", parse=lambda _, raw: Path(raw).expanduser(), derive=lambda _: DEFAULT_HOME
    )
    database_url: str = setting(
        "GANFORGE_DATABASE_URL", derive=lambda read: f"sqlite:///{read['home'] / 'ganforge.db'}"
    )
    broker_url: str = setting("GANFORGE_BROKER_URL", derive=lambda _: "filesystem://")
    storage_url: str = setting(
        "GANFORGE_STORAGE_URL", derive=lambda read: (read["home"] / "artifacts").as_uri()
    )
    # Declared before every field with a default, as `derive` leaves theirs out (dataclass
    # order): the API's threads per process and the event streams each may serve at once.
    api_threads: int = setting(
        "GANFORGE_API_THREADS", parse=int_at_least(1), derive=lambda _: DEFAULT_API_THREADS
    )
    streams_per_process: int = setting(
        "GANFORGE_STREAMS_PER_PROCESS", parse=int_at_least(0), derive=_half_the_threads
    )
    s3_endpoint_url: str | None = setting(
        "GANFORGE_S3_ENDPOINT_URL", None, alias="AWS_ENDPOINT_URL"
    )
    # Where clients reach S3 when that differs from the service's own endpoint.
    s3_public_endpoint_url: str | None = setting("GANFORGE_S3_PUBLIC_ENDPOINT_URL", None)
    queue: str = setting("GANFORGE_QUEUE", "ganforge")
    torch_threads: int | None = setting("GANFORGE_TORCH_THREADS", None, int_at_least(1))
    progress_interval_s: float = setting(
        "GANFORGE_PROGRESS_INTERVAL_S", DEFAULT_PROGRESS_INTERVAL_S, positive_float
    )
    visibility_timeout_s: int = setting(
        "GANFORGE_VISIBILITY_TIMEOUT_S",
        DEFAULT_VISIBILITY_TIMEOUT_S,
        lambda name, raw: int(positive_float(name, raw)),
    )
    cancel_grace_s: float = setting(
        "GANFORGE_CANCEL_GRACE_S", DEFAULT_CANCEL_GRACE_S, positive_float
    )
    max_attempts: int = setting("GANFORGE_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, int_at_least(1))
    api_url: str = setting("GANFORGE_API_URL", DEFAULT_API_URL, lambda _, raw: raw.rstrip("/"))
    # A person's API token: not written for child processes.
    api_token: str | None = setting("GANFORGE_TOKEN", None, child=False)
    # The worker's node: its name (default: the host name), CPU slots offered when it has no
    # GPU, and labels jobs can ask for ("gpu=a100,zone=b").
    node_name: str | None = setting("GANFORGE_NODE_NAME", None)
    cpu_slots: int = setting("GANFORGE_CPU_SLOTS", 1, int_at_least(1))
    node_labels: str = setting("GANFORGE_NODE_LABELS", "")
    # Where other nodes reach this one for a multi-node job's rendezvous (default: the address
    # the host name resolves to).
    node_address: str | None = setting("GANFORGE_NODE_ADDRESS", None)
    node_timeout_s: float = setting(
        "GANFORGE_NODE_TIMEOUT_S", DEFAULT_NODE_TIMEOUT_S, positive_float
    )
    claim_timeout_s: float = setting(
        "GANFORGE_CLAIM_TIMEOUT_S", DEFAULT_CLAIM_TIMEOUT_S, positive_float
    )
    usage_half_life_s: float = setting(
        "GANFORGE_USAGE_HALF_LIFE_S", DEFAULT_USAGE_HALF_LIFE_S, positive_float
    )
    job_silence_s: float = setting("GANFORGE_JOB_SILENCE_S", DEFAULT_JOB_SILENCE_S, positive_float)
    storage_retry_s: float = setting(
        "GANFORGE_STORAGE_RETRY_S", DEFAULT_STORAGE_RETRY_S, positive_float
    )
    # Worker folders a spec's data.path may name (none by default; see shared/datafiles/roots.py).
    data_roots: tuple[Path, ...] = setting(
        "GANFORGE_DATA_ROOTS",
        (),
        lambda _, raw: parse_roots(raw),
        write=lambda roots: os.pathsep.join(str(root) for root in roots),
    )
    # Requests per minute one token may make (0: no limit); counted in Redis.
    rate_limit_per_minute: int = setting(
        "GANFORGE_RATE_LIMIT", DEFAULT_RATE_LIMIT_PER_MINUTE, int_at_least(0)
    )
    # Event streams one token may hold open over all API processes (0: no limit); counted in
    # Redis as expiring leases (api/stream_slots.py).
    streams_per_token: int = setting(
        "GANFORGE_STREAMS_PER_TOKEN", DEFAULT_STREAMS_PER_TOKEN, int_at_least(0)
    )
    log_flush_s: float = setting("GANFORGE_LOG_FLUSH_S", DEFAULT_LOG_FLUSH_S, positive_float)
    log_format: str = setting("GANFORGE_LOG_FORMAT", "text", lambda _, raw: raw.strip().lower())
    # A bearer token Prometheus must send to read /metrics; None: /metrics is open (like
    # /healthz), for a network where only the scraper reaches the API's port.
    metrics_token: str | None = setting("GANFORGE_METRICS_TOKEN", None)
    # prometheus_client's multiprocess folder (PROMETHEUS_MULTIPROC_DIR): set, the API's own
    # metrics (request latency, storage errors) are summed over every gunicorn process. The
    # API's gunicorn config sets it to a fresh folder when the operator gives none; it is not
    # written for children (they inherit the variable itself).
    prometheus_multiproc_dir: str | None = setting("PROMETHEUS_MULTIPROC_DIR", None, child=False)
    scheduler_poll_s: float = setting(
        "GANFORGE_SCHEDULER_POLL_S", DEFAULT_SCHEDULER_POLL_S, positive_float
    )
    # Sampling jobs run in each device's long-lived warm sampler (worker/warm/) instead of a
    # launcher per job; the cache holds this many generators per device.
    warm_sampler: bool = setting(
        "GANFORGE_WARM_SAMPLER", True, on_off, write=lambda on: "1" if on else "0"
    )
    # Training, evaluation and script attempts are forked by the node's fork server, which
    # imported torch once (worker/forkserver/), instead of each launcher and rank importing it.
    fork_server: bool = setting(
        "GANFORGE_FORK_SERVER", True, on_off, write=lambda on: "1" if on else "0"
    )
    sampler_cache: int = setting("GANFORGE_SAMPLER_CACHE", DEFAULT_SAMPLER_CACHE, int_at_least(1))
    # The account a root worker runs its jobs' processes as (worker/sandbox/account.py); set
    # empty, they run as root, which is unsafe. A worker that is not root keeps its own uid.
    job_user: str = setting(
        "GANFORGE_JOB_USER", DEFAULT_JOB_USER, lambda _, raw: raw.strip(), empty=""
    )
    code_cache_mb: int = setting("GANFORGE_CODE_CACHE_MB", DEFAULT_CODE_CACHE_MB, int_at_least(1))
    shard_cache_bytes: int = setting(
        "GANFORGE_SHARD_CACHE_BYTES", DEFAULT_SHARD_CACHE_BYTES, int_at_least(1)
    )
    # Bytes each user may store (job artifacts, datasets, code bundles) before new jobs and
    # uploads are refused; 0: no limit. An admin's per-user value (users.storage_quota_bytes)
    # overrides it (shared/storage_quota.py).
    storage_quota_bytes: int = setting("GANFORGE_STORAGE_QUOTA_BYTES", 0, int_at_least(0))
    # Seconds between the scheduler's storage sweeps (checkpoint retention).
    retention_interval_s: float = setting(
        "GANFORGE_RETENTION_INTERVAL_S", DEFAULT_RETENTION_INTERVAL_S, positive_float
    )
    # The orphan collector (shared/orphans.py): seconds between its runs, and how old an object
    # no row refers to must be before it is taken for an orphan.
    orphan_interval_s: float = setting(
        "GANFORGE_ORPHAN_INTERVAL_S", DEFAULT_ORPHAN_INTERVAL_S, positive_float
    )
    orphan_grace_s: float = setting(
        "GANFORGE_ORPHAN_GRACE_S", DEFAULT_ORPHAN_GRACE_S, positive_float
    )
    # How long after its event a webhook delivery is retried before it is failed.
    webhook_retry_s: float = setting(
        "GANFORGE_WEBHOOK_RETRY_S", DEFAULT_WEBHOOK_RETRY_S, positive_float
    )
    # Private networks webhooks may reach ("10.0.0.0/8,127.0.0.1"): none by default, so a
    # user's URL cannot reach the service's own network or the cloud's metadata address
    # (shared/webhooks/addresses.py); an operator lists the internal receivers they trust.
    webhook_private_addresses: tuple[IPNetwork, ...] = setting(
        "GANFORGE_WEBHOOK_PRIVATE_ADDRESSES",
        (),
        parse_networks,
        write=lambda networks: ",".join(str(network) for network in networks),
    )
    # How long after its event a finished (delivered or failed) delivery is kept.
    webhook_history_s: float = setting(
        "GANFORGE_WEBHOOK_HISTORY_S", DEFAULT_WEBHOOK_HISTORY_S, positive_float
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        read: dict[str, Any] = {}
        for item in fields(cls):
            var: Variable = item.metadata["env"]
            raw = env.get(var.name) or (env.get(var.alias) if var.alias else None)
            value = var.parse(var.name, raw) if raw else None
            if value is None and var.empty is not MISSING and env.get(var.name) == "":
                value = var.empty
            if value is None:
                value = var.derive(read) if var.derive else var.default
            read[item.name] = value
        settings = cls(**read)
        settings.validate()
        return settings

    def validate(self) -> None:
        scheme = urlparse(self.storage_url).scheme
        if scheme not in ("s3", "file"):
            raise ConfigError(
                f"GANFORGE_STORAGE_URL must start with s3:// or file://, got {self.storage_url!r}"
            )
        if scheme == "s3" and not urlparse(self.storage_url).netloc:
            raise ConfigError(
                "GANFORGE_STORAGE_URL=s3://... must name a bucket: s3://bucket/prefix"
            )
        if "://" not in self.database_url:
            raise ConfigError(f"GANFORGE_DATABASE_URL is not a URL: {self.database_url!r}")
        for item in filter(str.strip, self.node_labels.split(",")):
            if "=" not in item:
                raise ConfigError(
                    f"GANFORGE_NODE_LABELS must be name=value pairs separated by commas, "
                    f"got {item!r}"
                )
        if "://" not in self.broker_url:
            raise ConfigError(f"GANFORGE_BROKER_URL is not a URL: {self.broker_url!r}")
        if self.streams_per_process >= self.api_threads:
            raise ConfigError(
                f"GANFORGE_STREAMS_PER_PROCESS must be below GANFORGE_API_THREADS "
                f"({self.api_threads}), so that streams never hold every request thread; "
                f"got {self.streams_per_process}"
            )
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(
                f"GANFORGE_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, "
                f"got {self.log_format!r}"
            )

    @property
    def is_embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        """Message folder of the embedded (file-system) broker."""
        return self.home / "broker"

    @property
    def scheduler_heartbeat_file(self) -> Path:
        """Touched by the scheduler loop on every turn; `ganforge health scheduler` reads it."""
        return self.home / "scheduler.alive"

    @property
    def token_file(self) -> Path:
        """Where the embedded mode writes the local user's token for the CLI to find."""
        return self.home / TOKEN_FILE

    def to_env(self) -> dict[str, str]:
        """The environment that rebuilds these settings in a child process."""
        env: dict[str, str] = {}
        for item in fields(self):
            var: Variable = item.metadata["env"]
            value = getattr(self, item.name)
            if var.child and (value or var.default is not None):
                env[var.name] = var.write(value)
        return env

    @property
    def labels(self) -> dict[str, str]:
        """GANFORGE_NODE_LABELS as a mapping (checked by `validate`)."""
        pairs = (item.split("=", 1) for item in self.node_labels.split(",") if item.strip())
        return {name.strip(): value.strip() for name, value in pairs}

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ClientConfig:
    """Where the CLI sends its requests, and with which token.

    Each comes from the first that gives it: the command line (`--url`, `--token`), the
    environment (GANFORGE_API_URL, GANFORGE_TOKEN), `$GANFORGE_HOME/config.toml` (`url`,
    `token`), and last the embedded service's (the URL and token files `ganforge up` writes,
    else 127.0.0.1:8765)."""

    url: str
    token: str | None

    @classmethod
    def resolve(
        cls,
        url: str | None = None,
        token: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ClientConfig:
        env = os.environ if environ is None else environ
        home = _home(env)
        saved = read_client_file(home / CLIENT_CONFIG_FILE)
        url = (
            url
            or env.get("GANFORGE_API_URL")
            or saved.get("url")
            or _embedded_url(home)
            or DEFAULT_API_URL
        )
        token = token or env.get("GANFORGE_TOKEN") or saved.get("token") or _embedded_token(home)
        return cls(url=url.rstrip("/"), token=token)


def read_client_file(path: Path) -> dict[str, str]:
    """The CLI's config file as {key: value}; {} when there is none, ConfigError when it is
    not TOML or holds a key or value the CLI does not know."""
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path} is not a readable TOML file: {error}") from None
    for key, value in raw.items():
        if key not in CLIENT_CONFIG_KEYS:
            known = ", ".join(CLIENT_CONFIG_KEYS)
            raise ConfigError(f"{path}: unknown key {key!r} (known: {known})")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{path}: {key} must be a non-empty string")
    return {key: value.strip() for key, value in raw.items()}


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("GANFORGE_HOME") or DEFAULT_HOME).expanduser()


def _embedded_url(home: Path) -> str | None:
    """The URL the last `ganforge up` / `demo` of this home served at."""
    url_file = home / EMBEDDED_URL_FILE
    return (url_file.read_text().strip() or None) if url_file.is_file() else None


def _embedded_token(home: Path) -> str | None:
    """The local user's token that `ganforge up` / `demo` wrote (Settings.token_file)."""
    token_file = home / TOKEN_FILE
    return token_file.read_text().strip() if token_file.is_file() else None
