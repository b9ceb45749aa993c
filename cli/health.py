"""`ganforge health worker / scheduler`: container health checks (compose healthchecks,
Kubernetes probes) that exit 0 when this host's process is doing its work."""

from __future__ import annotations

import time

import click

from cli import main
from cli.group import CliError
from cli.output import console
from shared.config import Settings

# Seconds a worker has to answer a ping: its main process answers within milliseconds while
# its pool trains; a broker across a busy network, within a second or two.
DEFAULT_PING_TIMEOUT_S = 10.0

# A scheduler loop turns every half second, and a turn waits at most for the database's
# timeouts; a minute without one means it hangs.
DEFAULT_SCHEDULER_MAX_AGE_S = 60.0


@main.group()
def health() -> None:
    """Container health checks: exit 0 when healthy."""


@health.command("worker")
@click.option("--timeout", default=DEFAULT_PING_TIMEOUT_S, show_default=True, help="Seconds.")
@click.option(
    "--broker-down-ok",
    is_flag=True,
    help="Exit 0 when the broker itself is unreachable: a liveness probe must not restart a "
    "worker (and stop its training) for a Redis outage it cannot fix.",
)
def worker_health(timeout: float, broker_down_ok: bool) -> None:
    """Exit 0 if this host's worker answers a ping over the broker."""
    from shared.messaging import WorkerAnswer, ping_local_worker

    answer = ping_local_worker(Settings.from_env(), timeout)
    if answer is WorkerAnswer.ANSWERED or (answer is WorkerAnswer.BROKER_DOWN and broker_down_ok):
        console.print(f"worker: {answer.value}")
        return
    raise CliError(f"worker: {answer.value}")


@health.command("scheduler")
@click.option("--max-age", default=DEFAULT_SCHEDULER_MAX_AGE_S, show_default=True, help="Seconds.")
def scheduler_health(max_age: float) -> None:
    """Exit 0 if this host's scheduler loop turned lately."""
    path = Settings.from_env().scheduler_heartbeat_file
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        raise CliError(f"scheduler: no heartbeat yet ({path})") from None
    if age > max_age:
        raise CliError(f"scheduler: last turn {age:.0f} s ago (more than {max_age:.0f} s)")
    console.print(f"scheduler: last turn {age:.1f} s ago")
