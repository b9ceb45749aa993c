"""The `ganforge` command: drive jobs over the HTTP API, and run the service's processes.

This module holds the root group, its connection options and the service's own processes
(`up`, `api`, `scheduler`, `worker`, `db`, `admin create-*`); `demo` (one job on `up`'s
service) and the commands that talk to the API live beside it, one module per topic (`demo`,
`jobs`, `datasets`, `code`, `pool`, `tokens`, `health`). `group` maps failures to exit
statuses; `output` prints tables, JSON and ids; `packing` zips a folder into a code bundle.
`client` is the Python client of the HTTP API (usable from notebooks too); `embedded` starts
the service's processes (API, scheduler, worker) for `ganforge up`, `demo` and the
end-to-end tests.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import click

from cli.client import Client
from cli.group import CliError, GanforgeGroup
from cli.output import console
from shared.config import EMBEDDED_URL_FILE, ClientConfig, Settings
from shared.logs import configure_logging

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


# The commands that talk to the API live in their own modules; importing one registers its
# commands on `main`.
from cli import code as _code  # noqa: E402,F401
from cli import compare as _compare  # noqa: E402,F401
from cli import datasets as _datasets  # noqa: E402,F401
from cli import demo as _demo  # noqa: E402,F401
from cli import health as _health  # noqa: E402,F401
from cli import inversion as _inversion  # noqa: E402,F401
from cli import jobs as _jobs  # noqa: E402,F401
from cli import pool as _pool  # noqa: E402,F401
from cli import quality as _quality  # noqa: E402,F401
from cli import storage_usage as _storage_usage  # noqa: E402,F401
from cli import tensorboard as _tensorboard  # noqa: E402,F401
from cli import tokens as _tokens  # noqa: E402,F401
from cli import webhooks as _webhooks  # noqa: E402,F401
