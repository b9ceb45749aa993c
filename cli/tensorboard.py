"""`ganforge tensorboard JOB...`: a job's TensorBoard event files (or several jobs', side by
side) fetched into one log folder, one run folder per job, and TensorBoard started on it when
it is installed, else the command to start it printed.

Every training job writes `tensorboard/events.out.tfevents.attempt-N` (worker/tensorboard_log.py)
as an artifact; TensorBoard itself is not a ganforge dependency (it pulls in a web server and
protobuf for a viewer many labs already have), so the command fetches and hands over.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import click

from cli import api_client, main
from cli.client import DownloadCorruptError
from cli.group import CliError, ExitCode
from cli.job_ids import JOB_ID, short_id
from shared.config import DEFAULT_HOME

EVENTS_PREFIX = "tensorboard/"


def run_folder_name(job: dict[str, str]) -> str:
    """`<short id>-<name>`, the name made safe for a folder: how TensorBoard labels the run."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", job["name"]).strip("-")[:60]
    return f"{short_id(job['id'])}-{safe}" if safe else short_id(job["id"])


@main.command()
@click.argument("job_ids", nargs=-1, required=True, type=JOB_ID)
@click.option(
    "--logdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the runs go (default: $GANFORGE_HOME/tensorboard).",
)
@click.option("--no-start", is_flag=True, help="Fetch the files and print the command only.")
def tensorboard(job_ids: tuple[str, ...], logdir: Path | None, no_start: bool) -> None:
    """Open jobs' training curves in TensorBoard.

    Fetches each job's event files into LOGDIR/<short id>-<name>/ (checked against their
    SHA-256) and runs `tensorboard --logdir LOGDIR` when TensorBoard is installed."""
    client = api_client()
    home = Path(os.environ.get("GANFORGE_HOME") or DEFAULT_HOME).expanduser()
    logdir = logdir or home / "tensorboard"
    fetched = 0
    for job_id in job_ids:
        job = client.job(job_id)
        events = [a for a in client.artifacts(job_id) if a["name"].startswith(EVENTS_PREFIX)]
        if not events:
            click.echo(f"job {short_id(job_id)} has no TensorBoard events (yet)")
            continue
        folder = logdir / run_folder_name(job)
        folder.mkdir(parents=True, exist_ok=True)
        for artifact in events:
            target = folder / artifact["name"].removeprefix(EVENTS_PREFIX)
            try:
                client.download(job_id, artifact["name"], target, sha256=artifact["sha256"])
            except DownloadCorruptError as error:
                raise CliError(str(error)) from None
            fetched += 1
        click.echo(f"{len(events)} event file(s) of job {short_id(job_id)} in {folder}")
    if not fetched:
        raise CliError("no event files to show", ExitCode.NOT_FOUND)
    command = ["tensorboard", "--logdir", str(logdir)]
    program = shutil.which("tensorboard")
    if no_start or program is None:
        why = "" if no_start else " (TensorBoard is not installed here: pip install tensorboard)"
        click.echo(f"view them with: {' '.join(command)}{why}")  # whole lines: copied
        return
    os.execv(program, command)
