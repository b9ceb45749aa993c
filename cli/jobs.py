"""`ganforge submit / jobs / show / events / artifacts / watch / logs / download / cancel /
rerun`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import click
import requests
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cli import api_client, main
from cli.client import (
    FINAL_STATES,
    Client,
    DownloadCorruptError,
    ServiceUnreachableError,
    StreamUnavailableError,
)
from cli.group import CliError, ExitCode
from cli.job_ids import JOB_ID, short_id
from cli.job_view import print_job
from cli.output import (
    console,
    json_option,
    moment,
    print_ids,
    print_json,
    print_table,
    quiet_option,
)
from cli.spec_changes import apply_changes, fit_cadences
from shared.specs.request import JobKind

# Seconds between polls while following a job without a stream.
FOLLOW_INTERVAL_S = 0.5
# Seconds between reads of a log followed without a stream.
LOG_POLL_S = 1.0


@main.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(get_args(JobKind)), default="train", show_default=True)
@click.option("--name", default=None, help="Job name (default: the file name).")
@click.option("--watch/--no-watch", default=False, help="Follow the job to its end.")
@click.option("--tag", "tags", multiple=True, help="Tag the job (repeat for several).")
@click.option("--note", default=None, help="A note on the job (what it tries).")
@click.option("-q", "--quiet", is_flag=True, help="Print the new job's id alone.")
def submit(
    spec_file: Path,
    kind: str,
    name: str | None,
    watch: bool,
    tags: tuple[str, ...],
    note: str | None,
    quiet: bool,
) -> None:
    """Submit the job spec in SPEC_FILE (JSON)."""
    try:
        spec = json.loads(spec_file.read_text())
    except json.JSONDecodeError as exc:
        raise CliError(f"{spec_file} is not JSON: {exc}") from None
    client = api_client()
    job = client.submit(kind, name or spec_file.stem, spec, tags=list(tags), note=note)
    if quiet:
        click.echo(job["id"])
    else:
        console.print(f"submitted {job['kind']} job [bold]{job['id']}[/] ({job['state']})")
    if watch:
        finish(follow(client, job["id"]))


@main.command()
@click.option("--state", default=None, help="Only jobs in this state.")
@click.option("--kind", default=None, help="Only jobs of this kind (train, sample, script...).")
@click.option("--tag", "tags", multiple=True, help="Only jobs with this tag (repeat: all of them).")
@click.option("--search", default=None, help="Only jobs whose name or note holds this text.")
@click.option("--parent", type=JOB_ID, default=None, help="Only the children of this sweep.")
@click.option("--limit", default=20, show_default=True)
@json_option
@quiet_option
def jobs(
    state: str | None,
    kind: str | None,
    tags: tuple[str, ...],
    search: str | None,
    parent: str | None,
    limit: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """List your newest jobs.

    Ids are cut to their first 8 characters, which every command accepts; --json and -q
    print them whole."""
    page = api_client().jobs(
        state=state, kind=kind, tag=list(tags) or None, q=search, parent=parent, limit=limit
    )
    if as_json:
        return print_json(page)
    if quiet:
        return print_ids(job["id"] for job in page["jobs"])
    rows = []
    for job in page["jobs"]:
        fraction = (job.get("progress") or {}).get("fraction")
        shown = f"{fraction:.0%}" if fraction is not None else ""
        rows.append([short_id(job["id"]), job["kind"], job["name"], job["state"], shown,
                     _when(job), " ".join(job.get("tags") or [])])  # fmt: skip
    print_table(("id", "kind", "name", "state", "progress", "created", "tags"), rows)


@main.command()
@click.argument("job_id", type=JOB_ID)
@json_option
def show(job_id: str, as_json: bool) -> None:
    """Print a job, its events and its artifacts.

    The job as a page: state, progress, last figures with their intervals, warnings, error,
    placement and spec; --json prints the API's document."""
    client = api_client()
    job = client.job(job_id)
    if as_json:
        return print_json(job)
    print_job(job)
    print_events(client.events(job_id))
    print_artifacts(client.artifacts(job_id))


@main.command()
@click.argument("job_id", type=JOB_ID)
@json_option
def events(job_id: str, as_json: bool) -> None:
    """Print a job's state changes, oldest first."""
    found = api_client().events(job_id)
    if as_json:
        return print_json({"events": found})
    print_events(found)


@main.command()
@click.argument("job_id", type=JOB_ID)
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
@click.argument("job_id", type=JOB_ID)
def watch(job_id: str) -> None:
    """Follow a job with a progress bar until it ends.

    Exits 6 if the job ends failed or cancelled."""
    finish(follow(api_client(), job_id))


@main.command()
@click.argument("job_id", type=JOB_ID)
def cancel(job_id: str) -> None:
    """Cancel a job.

    A running one stops at its next check and keeps its last checkpoint."""
    job = api_client().cancel(job_id)
    console.print(f"job {job_id} is {job['state']}")


@main.command()
@click.argument("job_id", type=JOB_ID)
@click.option(
    "-f", "--follow", "follow_log", is_flag=True, help="Print new lines until the job ends."
)
def logs(job_id: str, follow_log: bool) -> None:
    """Print a job's log; -f follows it until the job ends.

    The log is rank 0's log.txt, uploaded within seconds of each line while the job runs."""
    client = api_client()
    if not follow_log:
        click.echo(client.log(job_id), nl=False)
        return
    offset = 0  # log bytes printed: the middle part of each message's id (event.log.artifact)
    try:
        for event in client.feed(job_id, "logs"):
            if event.name == "log":
                for line in event.data["lines"]:
                    click.echo(line)
                offset = int((event.id or "0.0").split(".")[1])
            elif event.name == "end":
                click.echo(f"ganforge: job {job_id} ended {event.data['state']}", err=True)
    except StreamUnavailableError:  # no streams here, or refused (429) on a reconnect
        _poll_log(client, job_id, offset)


def _poll_log(client: Client, job_id: str, offset: int = 0) -> None:
    """`logs -f` without a stream: read the log from the last offset every second."""
    while True:
        state = client.job(job_id)["state"]  # before the read: a final state's lines are in
        lines, offset = client.log_lines(job_id, offset)
        for line in lines:
            click.echo(line)
        if state in FINAL_STATES:
            click.echo(f"ganforge: job {job_id} ended {state}", err=True)
            return
        time.sleep(LOG_POLL_S)


@main.command()
@click.argument("job_id", type=JOB_ID)
@click.argument("names", nargs=-1)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="A folder (default: here); for one NAME, a file name also works.",
)
def download(job_id: str, names: tuple[str, ...], output: Path | None) -> None:
    """Download artifacts of a job, checking each one's SHA-256.

    NAME... are artifact names (e.g. samples/step-000500.png); none: all of them. Into a
    folder they keep their paths (DIR/samples/step-000500.png); one NAME without -o
    lands here under its file name."""
    client = api_client()
    listed = {artifact["name"]: artifact for artifact in client.artifacts(job_id)}
    for name in names:
        if name not in listed:
            raise CliError(f"job {job_id} has no artifact {name!r}", ExitCode.NOT_FOUND)
    chosen = [listed[name] for name in names] if names else list(listed.values())
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(*columns, TransferSpeedColumn(), console=console, transient=True) as bar:
        for artifact in chosen:
            target = download_target(artifact["name"], output, one=len(names) == 1)
            target.parent.mkdir(parents=True, exist_ok=True)
            task = bar.add_task(artifact["name"], total=artifact["size"])
            try:
                client.download(
                    job_id,
                    artifact["name"],
                    target,
                    sha256=artifact["sha256"],
                    on_bytes=lambda size, task=task: bar.advance(task, size),  # type: ignore[misc]
                )
            except DownloadCorruptError as error:
                raise CliError(str(error)) from None
            bar.console.print(f"wrote {target}", highlight=False)


def download_target(name: str, output: Path | None, one: bool) -> Path:
    """Where artifact `name` is written: `output` itself for one named artifact when it is
    not a folder; else under `output` (default: here) with its path, or, for one artifact
    without -o, here under its file name."""
    if one and output is None:
        return Path(name.rsplit("/", 1)[-1])
    if one and output is not None and not output.is_dir() and not str(output).endswith("/"):
        return output
    return (output or Path(".")) / name


@main.command()
@click.argument("job_id", type=JOB_ID)
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
    for line in fit_cadences(job["spec"], spec, changes):
        click.echo(line, err=True)
    # The rerun answers the same question: it keeps the tags (the note was about the first).
    new = client.submit(job["kind"], name or job["name"], spec, tags=job.get("tags"))
    click.echo(new["id"])
    if watch:
        finish(follow(client, new["id"]))


def follow(
    client: Client,
    job_id: str,
    on_artifact: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Show a job's progress until it ends; returns the job as it ended. Follows its live
    feed (Server-Sent Events) and polls instead when the service does not stream or the
    stream fails. `on_artifact` sees each new artifact the feed announces (the API's artifact
    JSON; none while polling), and may print above the progress bar."""
    columns = (
        TextColumn("[bold]{task.fields[state]:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[steps]}"),
        TextColumn("{task.fields[speed]}"),
        TextColumn("{task.fields[losses]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("job", total=None, state="queued", steps="", speed="", losses="")
        job = client.job(job_id)
        _show(bar, task, job)
        if job["state"] not in FINAL_STATES:
            try:
                for event in client.feed(job_id, "events"):
                    if event.name == "state":
                        job["state"] = event.data["to"]
                    elif event.name == "progress":
                        job.update(event.data)
                    elif event.name == "artifact" and on_artifact is not None:
                        on_artifact(event.data)
                    _show(bar, task, job)
            except (StreamUnavailableError, ServiceUnreachableError, requests.RequestException):
                for job in client.follow(job_id, interval_s=FOLLOW_INTERVAL_S):
                    _show(bar, task, job)
        job = client.job(job_id)  # as it ended, with its error
        _show(bar, task, job)
    return job


def _show(bar: Progress, task: TaskID, job: dict[str, Any]) -> None:
    progress = job.get("progress") or {}
    metrics = job.get("metrics") or {}
    losses = " ".join(
        f"{k.split('/')[1]}={v:.3f}"
        for k, v in metrics.items()
        if k.endswith("/loss") and isinstance(v, (int, float))
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


def finish(job: dict[str, Any]) -> None:
    """Say how a followed job ended; exit 6 unless it succeeded."""
    if job["state"] != "succeeded":
        detail = f": {job['error']}" if job.get("error") else ""
        raise CliError(f"job {job['id']} ended {job['state']}{detail}", ExitCode.JOB_FAILED)
    console.print(f"job {job['id']} succeeded")


def print_events(found: list[dict[str, Any]]) -> None:
    rows = [[moment(e["at"]), e["from"] or "-", e["to"], e["attempt"], e["reason"]] for e in found]
    print_table(("at", "from", "to", "attempt", "reason"), rows, whole=())


def print_artifacts(found: list[dict[str, Any]], title: str | None = None) -> None:
    rows = [[a["name"], a["kind"], a["step"], a["size"]] for a in found]
    print_table(("artifact", "kind", "step", "bytes"), rows, whole=("artifact",), title=title)


def _when(job: dict[str, Any]) -> str:
    return moment(job["created_at"])
