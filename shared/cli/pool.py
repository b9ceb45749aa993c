"""`ganforge pool`, `queue`, `priority` and the pool's admin commands."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from shared.cli import _api, _client, admin, console, main


@main.command()
def pool() -> None:
    """The pool's nodes: state, labels, and who holds each device."""
    overview = _api(_client().pool)
    table = Table("node", "state", "labels", "device", "model", "job", "owner")
    for node in overview["nodes"]:
        labels = ",".join(f"{k}={v}" for k, v in sorted(node["labels"].items()))
        for device in node["devices"]:
            table.add_row(
                node["name"],
                node["state"],
                labels,
                str(device["index"]),
                str(device.get("model") or device["kind"]),
                device["job_id"] or "",
                device["owner"] or "",
            )
    console.print(table)


@main.command()
def queue() -> None:
    """Every user's queued and running jobs, in the order the scheduler serves them."""
    overview = _api(_client().pool)
    table = Table("pos", "id", "owner", "kind", "devices", "prio", "state", "waiting for")
    rows: list[dict[str, Any]] = overview["active"] + overview["queue"]
    for job in rows:
        table.add_row(
            str(job["position"] or ""),
            job["id"],
            job["owner"],
            job["kind"],
            str(job["devices"]),
            str(job["priority"]),
            job["state"],
            job["waiting_reason"] or "",
        )
    console.print(table)


@main.command()
@click.argument("job_id")
@click.argument("value", type=int)
def priority(job_id: str, value: int) -> None:
    """Set a job's priority (admins: any; owners: only lower it)."""
    job = _api(_client().set_priority, job_id, value)
    console.print(f"job {job_id} has priority {job['priority']}")


@admin.command()
@click.argument("node")
def drain(node: str) -> None:
    """Let NODE finish its jobs and take no new ones."""
    console.print(_api(_client().drain, node, True))


@admin.command()
@click.argument("node")
def undrain(node: str) -> None:
    """Let NODE take new jobs again."""
    console.print(_api(_client().drain, node, False))


@admin.command()
@click.argument("user")
@click.option("--max-devices", type=int, default=None, help="most devices held at once")
@click.option("--max-queued-jobs", type=int, default=None, help="most jobs waiting at once")
def quota(user: str, max_devices: int | None, max_queued_jobs: int | None) -> None:
    """Set USER's quotas; an option left out lifts that limit."""
    console.print(_api(_client().set_quota, user, max_devices, max_queued_jobs))
