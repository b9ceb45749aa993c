"""`ganforge pool`, `queue`, `priority` and the pool's admin commands."""

from __future__ import annotations

from typing import Any

import click

from cli import admin, api_client, main
from cli.job_ids import JOB_ID
from cli.output import console, json_option, print_ids, print_json, print_table, quiet_option


@main.command()
@json_option
@quiet_option
def pool(as_json: bool, quiet: bool) -> None:
    """The pool's nodes: state, labels, who holds each device."""
    overview = api_client().pool()
    if as_json:
        return print_json(overview)
    if quiet:
        return print_ids(node["name"] for node in overview["nodes"])
    rows = []
    for node in overview["nodes"]:
        labels = ",".join(f"{k}={v}" for k, v in sorted(node["labels"].items()))
        for device in node["devices"]:
            model = device.get("model") or device["kind"]
            holder = [device["job_id"] or "", device["owner"] or ""]
            rows.append([node["name"], node["state"], labels, device["index"], model, *holder])
    print_table(
        ("node", "state", "labels", "device", "model", "job", "owner"), rows, whole=("job",)
    )


@main.command()
@json_option
@quiet_option
def queue(as_json: bool, quiet: bool) -> None:
    """Every user's active and queued jobs, in service order."""
    overview = api_client().pool()
    jobs: list[dict[str, Any]] = overview["active"] + overview["queue"]
    if as_json:
        return print_json({"active": overview["active"], "queue": overview["queue"]})
    if quiet:
        return print_ids(job["id"] for job in jobs)
    rows = [
        [
            job["position"],
            job["id"],
            job["owner"],
            job["kind"],
            job["devices"],
            job["priority"],
            job["state"],
            job["waiting_reason"],
        ]
        for job in jobs
    ]
    headers = ("pos", "id", "owner", "kind", "devices", "prio", "state", "waiting for")
    print_table(headers, rows)


@main.command()
@click.argument("job_id", type=JOB_ID)
@click.argument("value", type=int)
def priority(job_id: str, value: int) -> None:
    """Set a job's priority (admins: any; owners: only lower it)."""
    job = api_client().set_priority(job_id, value)
    console.print(f"job {job_id} has priority {job['priority']}")


@admin.command()
@click.argument("node")
def drain(node: str) -> None:
    """Let NODE finish its jobs and take no new ones."""
    console.print(api_client().drain(node, True))


@admin.command()
@click.argument("node")
def undrain(node: str) -> None:
    """Let NODE take new jobs again."""
    console.print(api_client().drain(node, False))


@admin.command()
@click.argument("user")
@click.option("--max-devices", type=int, default=None, help="Most devices held at once.")
@click.option("--max-queued-jobs", type=int, default=None, help="Most jobs waiting at once.")
def quota(user: str, max_devices: int | None, max_queued_jobs: int | None) -> None:
    """Set USER's quotas; an option left out lifts that limit."""
    console.print(api_client().set_quota(user, max_devices, max_queued_jobs))
