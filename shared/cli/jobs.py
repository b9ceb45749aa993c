"""`ganforge submit / jobs / show / events / artifacts / watch / download / cancel / rerun`."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from shared.cli import api_client, main
from shared.cli.group import CliError, ExitCode
from shared.cli.output import (
    console,
    json_option,
    print_ids,
    print_json,
    print_table,
    quiet_option,
)
from shared.client import Client

# Seconds between polls while following a job.
FOLLOW_INTERVAL_S = 0.5


@main.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(["train", "sample"]), default="train", show_default=True)
@click.option("--name", default=None, help="Job name (default: the file name).")
@click.option("--watch/--no-watch", default=False, help="Follow the job to its end.")
def submit(spec_file: Path, kind: str, name: str | None, watch: bool) -> None:
    """Submit the job spec in SPEC_FILE (JSON)."""
    try:
        spec = json.loads(spec_file.read_text())
    except json.JSONDecodeError as exc:
        raise CliError(f"{spec_file} is not JSON: {exc}") from None
    client = api_client()
    job = client.submit(kind, name or spec_file.stem, spec)
    console.print(f"submitted {job['kind']} job [bold]{job['id']}[/] ({job['state']})")
    if watch:
        finish(follow(client, job["id"]))


@main.command()
@click.option("--state", default=None, help="Only jobs in this state.")
@click.option("--kind", default=None, help="Only `train` or `sample` jobs.")
@click.option("--limit", default=20, show_default=True)
@json_option
@quiet_option
def jobs(state: str | None, kind: str | None, limit: int, as_json: bool, quiet: bool) -> None:
    """List your newest jobs."""
    page = api_client().jobs(state=state, kind=kind, limit=limit)
    if as_json:
        return print_json(page)
    if quiet:
        return print_ids(job["id"] for job in page["jobs"])
    rows = []
    for job in page["jobs"]:
        fraction = (job.get("progress") or {}).get("fraction")
        shown = f"{fraction:.0%}" if fraction is not None else ""
        rows.append([job["id"], job["kind"], job["name"], job["state"], shown, _when(job)])
    print_table(("id", "kind", "name", "state", "progress", "created"), rows)


@main.command()
@click.argument("job_id")
@json_option
def show(job_id: str, as_json: bool) -> None:
    """Print a job, its events and its artifacts."""
    client = api_client()
    job = client.job(job_id)
    if as_json:
        return print_json(job)
    console.print_json(data=job)
    print_events(client.events(job_id))
    print_artifacts(client.artifacts(job_id))


@main.command()
@click.argument("job_id")
@json_option
def events(job_id: str, as_json: bool) -> None:
    """Print a job's state changes, oldest first."""
    found = api_client().events(job_id)
    if as_json:
        return print_json({"events": found})
    print_events(found)


@main.command()
@click.argument("job_id")
@json_option
@quiet_option
def artifacts(job_id: str, as_json: bool, quiet: bool) -> None:
    """List a job's artifacts (checkpoints, grids, metrics)."""
    found = api_client().artifacts(job_id)
    if as_json:
        return print_json({"artifacts": found})
    if quiet:
        return print_ids(artifact["name"] for artifact in found)
    print_artifacts(found)


@main.command()
@click.argument("job_id")
def watch(job_id: str) -> None:
    """Follow a job with a progress bar until it ends.

    Exits 6 if the job ends failed or cancelled."""
    finish(follow(api_client(), job_id))


@main.command()
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Cancel a job.

    A running one stops at its next check and keeps its last checkpoint."""
    job = api_client().cancel(job_id)
    console.print(f"job {job_id} is {job['state']}")


@main.command()
@click.argument("job_id")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None)
def download(job_id: str, name: str, output: Path | None) -> None:
    """Download a job's artifact NAME (e.g. samples/step-000500.png)."""
    target = output or Path(name.rsplit("/", 1)[-1])
    api_client().download(job_id, name, target)
    console.print(f"wrote {target}")


@main.command()
@click.argument("job_id")
@click.option(
    "--set",
    "changes",
    multiple=True,
    metavar="PATH=VALUE",
    help="Change one spec field, e.g. train.seed=3; VALUE is JSON if it parses, else a string.",
)
@click.option("--name", default=None, help="The new job's name (default: the old one's).")
@click.option("--watch/--no-watch", default=False, help="Follow the new job to its end.")
def rerun(job_id: str, changes: tuple[str, ...], name: str | None, watch: bool) -> None:
    """Submit a copy of a job, with some spec fields changed.

    Prints the new job's id."""
    client = api_client()
    job = client.job(job_id)
    spec = apply_changes(job["spec"], changes)
    new = client.submit(job["kind"], name or job["name"], spec)
    click.echo(new["id"])
    if watch:
        finish(follow(client, new["id"]))


def apply_changes(spec: dict[str, Any], changes: Sequence[str]) -> dict[str, Any]:
    """A copy of `spec` with each "dotted.path=value" set; a value that parses as JSON is that
    JSON (3, 0.5, true, null, [1, 2], {"name": "hinge"}), anything else is the string."""
    changed = copy.deepcopy(spec)
    for change in changes:
        path, equals, raw = change.partition("=")
        keys = path.split(".")
        if not equals or not all(keys):
            raise click.BadParameter(f"{change!r} is not PATH=VALUE", param_hint="--set")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        parent = changed
        for depth, key in enumerate(keys[:-1]):
            parent = parent.setdefault(key, {})
            if not isinstance(parent, dict):
                where = ".".join(keys[: depth + 1])
                raise click.BadParameter(
                    f"{change!r}: {where} is {parent!r}, not an object", param_hint="--set"
                )
        parent[keys[-1]] = value
    return changed


def follow(client: Client, job_id: str) -> dict[str, Any]:
    """Show a job's progress until it ends; returns its final state."""
    columns = (
        TextColumn("[bold]{task.fields[state]:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[steps]}"),
        TextColumn("{task.fields[speed]}"),
        TextColumn("{task.fields[losses]}"),
        TimeRemainingColumn(),
    )
    job: dict[str, Any] = {}
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("job", total=None, state="queued", steps="", speed="", losses="")
        for job in client.follow(job_id, interval_s=FOLLOW_INTERVAL_S):
            progress = job.get("progress") or {}
            metrics = job.get("metrics") or {}
            losses = " ".join(
                f"{k.split('/')[1]}={v:.3f}" for k, v in metrics.items() if k.endswith("/loss")
            )
            speed = f"{progress['images_per_second']:.0f} img/s" if progress else ""
            steps = f"step {progress['step']}/{progress['total_steps']}" if progress else ""
            bar.update(
                task,
                total=progress.get("total_steps"),
                completed=progress.get("step", 0),
                state=job["state"],
                steps=steps,
                speed=speed,
                losses=losses,
            )
    return job


def finish(job: dict[str, Any]) -> None:
    """Say how a followed job ended; exit 6 unless it succeeded."""
    if job["state"] != "succeeded":
        detail = f": {job['error']}" if job.get("error") else ""
        raise CliError(f"job {job['id']} ended {job['state']}{detail}", ExitCode.JOB_FAILED)
    console.print(f"job {job['id']} succeeded")


def print_events(found: list[dict[str, Any]]) -> None:
    rows = [
        [e["at"][:19].replace("T", " "), e["from"] or "-", e["to"], e["attempt"], e["reason"]]
        for e in found
    ]
    print_table(("at", "from", "to", "attempt", "reason"), rows, whole=())


def print_artifacts(found: list[dict[str, Any]], title: str | None = None) -> None:
    rows = [[a["name"], a["kind"], a["step"], a["size"]] for a in found]
    print_table(("artifact", "kind", "step", "bytes"), rows, whole=("artifact",), title=title)


def _when(job: dict[str, Any]) -> str:
    """A job's creation time to the second, without the ISO 'T' and offset."""
    return str(job["created_at"])[:19].replace("T", " ")
