"""The `ganforge` command: drive jobs over the HTTP API, and run the service's processes.

This module holds the root group, its connection options and the service's own processes
(`up`, `demo`, `api`, `scheduler`, `worker`, `db`, `admin create-*`); the commands that talk to
the API live beside it, one module per topic (`jobs`, `datasets`, `code`, `pool`, `tokens`,
`health`). `group` maps failures to exit statuses; `output` prints tables, JSON and ids;
`packing` zips a folder into a code bundle. `client` is the Python client of the HTTP API
(usable from notebooks too); `embedded` starts the service's processes (API, scheduler,
worker) for `ganforge up`, `demo` and the end-to-end tests.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import click

from cli.client import Client
from cli.group import CliError, GanforgeGroup
from cli.output import console
from shared.config import EMBEDDED_URL_FILE, ClientConfig, Settings
from shared.logs import configure_logging

# What `ganforge demo` trains: ganforge's recommended ring8 recipe, `examples/ring8.json`
# (tests/unit/test_examples.py keeps the two equal), which covers 8/8 modes with >= 97.6% high
# quality on every seed measured; 9 min on a 2-core machine through the service. `--steps`
# shortens it (the cosine decay follows), at a cost in quality: 8/8 modes with 87.5% at 10,000
# steps, 60% at 5,000 (seed 0).
DEMO_SPEC: dict[str, Any] = {
    "model": {"family": "mlp", "width": 128, "pack": 2},
    "latent": {"dim": 8},
    "data": {"source": "toy:ring8"},
    "train": {
        "steps": 30000, "batch_size": 512, "lr": 0.001, "lr_schedule": "cosine",
        "ema_decay": 0.999,
    },
    "checkpoint_every": 5000,
    "sample_every": 2500,
}  # fmt: skip


# Seconds between `ganforge up`'s looks at its children and at a stop request.
UP_POLL_S = 0.2


HELP = """Train and sample GANs on the lab's GPU pool.

\b
Where to connect: --url and --token, else GANFORGE_API_URL and GANFORGE_TOKEN,
else url and token in $GANFORGE_HOME/config.toml (~/.ganforge/config.toml),
else the embedded service (`ganforge up`) on this machine.

\b
Exit status: 0 ok, 1 error, 2 bad usage, 3 not authorised (HTTP 401/403),
4 not found (404), 5 service unreachable, 6 the followed job failed or was
cancelled.
"""


@click.group(cls=GanforgeGroup, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", metavar="URL", help="The API, e.g. https://ganforge.lab.example.")
@click.option("--token", metavar="TOKEN", help="Your bearer token.")
def main(url: str | None, token: str | None) -> None:
    configure_logging("text")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _settings() -> Settings:
    return Settings.from_env()


def api_client() -> Client:
    """A client of the API that `--url` / `--token`, the environment or the config file name."""
    flags = click.get_current_context().find_root().params
    config = ClientConfig.resolve(url=flags.get("url"), token=flags.get("token"))
    return Client(config.url, config.token)


# --- processes -------------------------------------------------------------------------------


@main.command()
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
def api(workers: int) -> None:
    """Serve the HTTP API (gunicorn).

    It binds GANFORGE_API_URL's host and port."""
    from cli.embedded import service_commands

    command = service_commands(_settings(), api_workers=workers)["api"]
    os.execv(command[0], command)


@main.command()
def scheduler() -> None:
    """Place queued jobs on the pool's nodes, until stopped.

    Several may run: one holds the lease and schedules, the others stand by."""
    from scheduler.process import run_forever
    from shared.messaging import make_celery

    settings = _settings()
    configure_logging(settings.log_format)
    run_forever(settings, make_celery(settings))


@main.command(hidden=True)
def dispatcher() -> None:
    """The scheduler's name before it placed jobs on nodes; older deploy files still call it."""
    scheduler.callback()  # type: ignore[misc]


@main.command()
def worker() -> None:
    """Run this node's Celery worker.

    One job slot per GPU, or GANFORGE_CPU_SLOTS slots on a node without one."""
    from cli.embedded import service_commands

    command = service_commands(_settings())["worker"]
    os.execv(command[0], command)


@main.group()
def db() -> None:
    """Database schema: `ganforge db upgrade`."""


@db.command()
def upgrade() -> None:
    """Apply every migration up to the newest."""
    from shared.migrate import upgrade as run_upgrade

    run_upgrade(_settings().database_url)
    console.print("database is at the newest schema")


@main.group()
def admin() -> None:
    """Users, tokens, nodes and quotas."""


@admin.command("create-user")
@click.argument("name")
@click.option("--admin", "is_admin", is_flag=True, help="may administer the pool")
def create_user(name: str, is_admin: bool) -> None:
    """Create user NAME (run it where the database is)."""
    from shared.db import session_scope
    from shared.users import UserExistsError
    from shared.users import create_user as make_user

    try:
        with session_scope(_settings().database_url) as session:
            make_user(session, name, is_admin=is_admin)
    except UserExistsError as exc:
        raise CliError(str(exc)) from None
    console.print(f"created user {name}")


@admin.command("create-token")
@click.argument("name")
@click.option("--label", default="", help="what the token is for")
def create_token(name: str, label: str) -> None:
    """Print a new bearer token for user NAME.

    It is shown once; only its SHA-256 is stored."""
    from shared.db import session_scope
    from shared.users import UnknownUserError
    from shared.users import create_token as make_token

    try:
        with session_scope(_settings().database_url) as session:
            token = make_token(session, name, label)
    except UnknownUserError as exc:
        raise CliError(str(exc)) from None
    click.echo(token)


@admin.command("seed-examples")
def seed_examples() -> None:
    """Store the data examples/*.json name (run it where the service's settings are).

    The embedded service does it when it starts; a lab's service, once."""
    from shared.example_data import ExampleDataMissingError, seed_example_data
    from shared.storage import StorageError
    from shared.storage.factory import open_storage

    try:
        written = seed_example_data(open_storage(_settings()))
    except (ExampleDataMissingError, StorageError) as exc:
        raise CliError(str(exc)) from None
    console.print(f"stored {len(written)} example file(s)" + "".join(f"\n  {k}" for k in written))


# --- the embedded service --------------------------------------------------------------------


def port_option(command: Any) -> Any:
    return click.option(
        "--port",
        type=click.IntRange(1, 65535),
        default=None,
        help="Serve the API on this local port (default: GANFORGE_API_URL's, 8765); later "
        "commands on this machine find it.",
    )(command)


def _embedded_settings(port: int | None) -> Settings:
    """The embedded service's settings, on `port` when given, with the URL it will serve at
    recorded in its home (shared.config.EMBEDDED_URL_FILE) for the CLI's later commands."""
    settings = _settings()
    if port is not None:
        settings = settings.with_(api_url=f"http://127.0.0.1:{port}")
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / EMBEDDED_URL_FILE).write_text(settings.api_url + "\n")
    return settings


@main.command()
@port_option
def up(port: int | None) -> None:
    """Run the embedded service here until Ctrl-C.

    SQLite, a local artifact folder and a file-system broker in GANFORGE_HOME."""
    from cli.embedded import ServiceProcesses, StopSignals, prepare

    settings = _embedded_settings(port)
    prepare(settings)
    # SIGTERM and Ctrl-C stop every child (their process groups) before `up` exits, so the
    # next `up` finds the port and the broker folder free.
    with StopSignals() as signals, ServiceProcesses(settings, settings.home / "logs") as services:
        services.start()
        if services.wait_ready(cancelled=lambda: signals.requested):
            console.print(
                f"ganforge is up at {settings.api_url} (home {settings.home}); Ctrl-C stops"
            )
        while not signals.requested:
            services.check_alive()
            time.sleep(UP_POLL_S)
        console.print("stopping")
    console.print("stopped")


@main.command()
@click.option("--steps", default=DEMO_SPEC["train"]["steps"], show_default=True)
@port_option
def demo(steps: int, port: int | None) -> None:
    """Train a small GAN on the embedded service, start to end.

    Starts the embedded service, trains ganforge's ring8 recipe (an MLP PacGAN on 8 Gaussians,
    about 9 minutes on 2 cores; --steps 5000 for a quick look), and shows its quality, its picture
    and where it all went."""
    from cli.embedded import ServiceProcesses, prepare
    from cli.jobs import finish, follow, print_artifacts

    settings = _embedded_settings(port)
    token = prepare(settings)
    # SIGTERM unwinds like Ctrl-C, so the service's processes are stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    spec = {
        **DEMO_SPEC,
        "train": {**DEMO_SPEC["train"], "steps": steps},
        # Cadences within the run (the API refuses longer ones).
        "checkpoint_every": min(DEMO_SPEC["checkpoint_every"], steps),
        "sample_every": min(DEMO_SPEC["sample_every"], steps),
    }
    with ServiceProcesses(settings, settings.home / "logs") as services:
        console.print(f"starting the embedded service in {settings.home} ...")
        services.start()
        services.wait_ready()
        client = Client(settings.api_url, token)
        job = client.submit("train", "demo: mlp on ring8", spec)
        console.print(f"submitted job {job['id']}")
        job = follow(client, job["id"])
        print_artifacts(client.artifacts(job["id"]), title=f"artifacts of job {job['id']}")
        _print_locations(job, settings)
        _print_quality(job, settings)
        finish(job)


def _print_quality(job: dict[str, Any], settings: Settings) -> None:
    """The run's own verdict: its last evaluation, its warnings, and its picture's path."""
    evaluation = job.get("evaluation")
    if not evaluation or "modes_covered" not in evaluation:
        return
    from cli.quality import warning_span

    kl = evaluation.get("kl_from_uniform")
    console.print(
        f"quality at step {evaluation['step']}: {evaluation['modes_covered']}/"
        f"{evaluation['mode_count']} modes, {100 * evaluation['high_quality']:.1f}% high quality, "
        + (f"KL from uniform {kl:.3f}" if kl is not None else "no high-quality sample"),
        highlight=False,
    )
    intervals = []
    for key, name, form, scale, unit in (
        ("modes_covered", "modes", ".0f", 1, ""),
        ("high_quality", "high quality", ".1f", 100, "%"),
        ("kl_from_uniform", "KL", ".2g", 1, ""),
    ):
        low, high = evaluation.get(f"{key}_interval") or (None, None)
        if low is not None and high is not None:
            intervals.append(f"{name} {scale * low:{form}}-{scale * high:{form}}{unit}")
    if intervals and evaluation.get("samples"):
        console.print(
            f"  95% intervals ({evaluation['samples']:,} samples): {', '.join(intervals)}",
            highlight=False,
        )
    for warning in job.get("warnings") or []:
        console.print(
            f"[yellow]warning[/] ({warning_span(warning)}): {warning['message']}", highlight=False
        )
    from urllib.parse import urlparse

    storage = urlparse(settings.storage_url)
    name = f"evaluations/step-{evaluation['step']:06d}.png"
    if storage.scheme == "file":
        console.print(f"picture: {Path(storage.path) / 'jobs' / job['id'] / name}")


def _print_locations(job: dict[str, Any], settings: Settings) -> None:
    from urllib.parse import urlparse

    storage = urlparse(settings.storage_url)
    if storage.scheme == "file":
        console.print(f"files: {Path(storage.path) / 'jobs' / job['id']}")
    # The demo stops its service on the way out: downloading needs it running again.
    console.print(
        f"download later: `ganforge up` in one shell, then `ganforge download {job['id']}` "
        f"(or GET {settings.api_url}/api/v1/jobs/{job['id']}/artifacts/<artifact>)"
    )


# The commands that talk to the API live in their own modules; importing one registers its
# commands on `main`.
from cli import code as _code  # noqa: E402,F401
from cli import compare as _compare  # noqa: E402,F401
from cli import datasets as _datasets  # noqa: E402,F401
from cli import health as _health  # noqa: E402,F401
from cli import inversion as _inversion  # noqa: E402,F401
from cli import jobs as _jobs  # noqa: E402,F401
from cli import pool as _pool  # noqa: E402,F401
from cli import quality as _quality  # noqa: E402,F401
from cli import storage_usage as _storage_usage  # noqa: E402,F401
from cli import tensorboard as _tensorboard  # noqa: E402,F401
from cli import tokens as _tokens  # noqa: E402,F401
from cli import webhooks as _webhooks  # noqa: E402,F401
