"""The `ganforge` command: run the service's processes, administer users, and drive jobs.

ganforge demo                      embedded service + a small training job, start to end
ganforge up                        the embedded service (API, scheduler, worker) until Ctrl-C
ganforge api | scheduler | worker  one process of a real deployment
ganforge db upgrade                apply migrations
ganforge admin create-user NAME    / create-token NAME
ganforge submit SPEC.json | jobs | show ID | watch ID | cancel ID | download ID NAME
ganforge pool | queue              the pool's nodes and devices; every user's queue, in order
ganforge priority ID N             set (admins) or lower (owners) a job's priority
ganforge admin drain|undrain NODE  / quota USER --max-devices N --max-queued-jobs N
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from shared.client import ApiError, Client
from shared.config import Settings

console = Console()

# The README demo: a 2-D MLP GAN on 8 Gaussians on a ring; about half a minute on two CPU cores.
DEMO_SPEC: dict[str, Any] = {
    "model": {"family": "mlp", "width": 128},
    "latent": {"dim": 8, "prior": "gaussian"},
    "loss": "non_saturating",
    "data": {"source": "toy:ring8"},
    "train": {"steps": 2000, "batch_size": 256, "lr": 1e-3, "betas": [0.5, 0.999], "seed": 0},
    "checkpoint_every": 500,
    "sample_every": 250,
    "resources": {"devices": 1},
}


@click.group(help=__doc__)
def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _settings() -> Settings:
    return Settings.from_env()


def _client() -> Client:
    settings = _settings()
    return Client(settings.api_url, settings.client_token())


# --- processes -------------------------------------------------------------------------------


@main.command()
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
def api(workers: int) -> None:
    """Serve the HTTP API with gunicorn on GANFORGE_API_URL's host and port."""
    from shared.embedded import service_commands

    command = service_commands(_settings(), api_workers=workers)["api"]
    os.execv(command[0], command)


@main.command()
def scheduler() -> None:
    """Place queued jobs on the pool's nodes, until interrupted (one leads, others stand by)."""
    from shared.messaging import make_celery
    from shared.scheduler.loop import run_forever

    settings = _settings()
    run_forever(settings, make_celery(settings))


@main.command(hidden=True)
def dispatcher() -> None:
    """The scheduler's name before it placed jobs on nodes; older deploy files still call it."""
    scheduler.callback()  # type: ignore[misc]


@main.command()
def worker() -> None:
    """Run this node's Celery worker: one job slot per GPU, or GANFORGE_CPU_SLOTS CPU slots."""
    from shared.embedded import service_commands

    command = service_commands(_settings())["worker"]
    os.execv(command[0], command)


@main.group()
def db() -> None:
    """Database schema."""


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
    from shared.db import session_scope
    from shared.users import UserExistsError
    from shared.users import create_user as make_user

    try:
        with session_scope(_settings().database_url) as session:
            make_user(session, name, is_admin=is_admin)
    except UserExistsError as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"created user {name}")


@admin.command("create-token")
@click.argument("name")
@click.option("--label", default="", help="what the token is for")
def create_token(name: str, label: str) -> None:
    """Print a new bearer token for user NAME (shown once; stored hashed)."""
    from shared.db import session_scope
    from shared.users import UnknownUserError
    from shared.users import create_token as make_token

    try:
        with session_scope(_settings().database_url) as session:
            token = make_token(session, name, label)
    except UnknownUserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(token)


# --- the embedded service --------------------------------------------------------------------


@main.command()
def up() -> None:
    """Run the embedded service (SQLite, local artifacts, file-system broker) until Ctrl-C."""
    from shared.embedded import ServiceProcesses, prepare

    settings = _settings()
    prepare(settings)
    with ServiceProcesses(settings, settings.home / "logs") as services:
        services.start()
        services.wait_ready()
        console.print(f"ganforge is up at {settings.api_url} (home {settings.home}); Ctrl-C stops")
        try:
            while True:
                services.check_alive()
                time.sleep(1)
        except KeyboardInterrupt:
            console.print("stopping")


@main.command()
@click.option("--steps", default=DEMO_SPEC["train"]["steps"], show_default=True)
def demo(steps: int) -> None:
    """Start the embedded service, train a small GAN on 8 Gaussians, show where it all went."""
    from shared.embedded import ServiceProcesses, prepare

    settings = _settings()
    token = prepare(settings)
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
        job = _follow(client, job["id"])
        _print_artifacts(client, job, settings)
        _print_quality(job, settings)
        if job["state"] != "succeeded":
            raise click.ClickException(f"job ended {job['state']}: {job.get('error')}")


def _print_quality(job: dict[str, Any], settings: Settings) -> None:
    """The run's own verdict: its last evaluation, its warnings, and its picture's path."""
    evaluation = job.get("evaluation")
    if not evaluation or "modes_covered" not in evaluation:
        return
    kl = evaluation.get("kl_from_uniform")
    console.print(
        f"quality at step {evaluation['step']}: {evaluation['modes_covered']}/"
        f"{evaluation['mode_count']} modes, {100 * evaluation['high_quality']:.1f}% high quality, "
        + (f"KL from uniform {kl:.3f}" if kl is not None else "no high-quality sample"),
        highlight=False,
    )
    for warning in job.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {warning['message']}", highlight=False)
    from urllib.parse import urlparse

    storage = urlparse(settings.storage_url)
    name = f"evaluations/step-{evaluation['step']:06d}.png"
    if storage.scheme == "file":
        console.print(f"picture: {Path(storage.path) / 'jobs' / job['id'] / name}")


# --- jobs ------------------------------------------------------------------------------------


@main.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(["train", "sample"]), default="train", show_default=True)
@click.option("--name", default=None, help="job name (default: the file name)")
@click.option("--watch/--no-watch", default=False, help="follow the job to its end")
def submit(spec_file: Path, kind: str, name: str | None, watch: bool) -> None:
    """Submit the job spec in SPEC_FILE (JSON)."""
    try:
        spec = json.loads(spec_file.read_text())
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{spec_file} is not JSON: {exc}") from None
    client = _client()
    job = _api(client.submit, kind, name or spec_file.stem, spec)
    console.print(f"submitted {job['kind']} job [bold]{job['id']}[/] ({job['state']})")
    if watch:
        _follow(client, job["id"])


@main.command()
@click.option("--state", default=None)
@click.option("--kind", default=None)
@click.option("--limit", default=20, show_default=True)
def jobs(state: str | None, kind: str | None, limit: int) -> None:
    """List your newest jobs."""
    page = _api(_client().jobs, state=state, kind=kind, limit=limit)
    table = Table("id", "kind", "name", "state", "progress", "created")
    for job in page["jobs"]:
        fraction = (job.get("progress") or {}).get("fraction")
        shown = f"{fraction:.0%}" if fraction is not None else ""
        table.add_row(job["id"], job["kind"], job["name"], job["state"], shown, job["created_at"])
    console.print(table)


@main.command()
@click.argument("job_id")
def show(job_id: str) -> None:
    """Print a job, its events and its artifacts."""
    client = _client()
    console.print_json(data=_api(client.job, job_id))
    for event in _api(client.events, job_id):
        console.print(
            f"{event['at']}  {event['from'] or '-':>10} -> {event['to']:<10} {event['reason']}"
        )
    for artifact in _api(client.artifacts, job_id):
        console.print(f"  {artifact['name']:<40} {artifact['size']:>10} B")


@main.command()
@click.argument("job_id")
def watch(job_id: str) -> None:
    """Follow a job with a progress bar until it ends."""
    job = _follow(_client(), job_id)
    if job["state"] != "succeeded":
        sys.exit(1)


@main.command()
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Cancel a job (a running one stops at its next check and keeps its last checkpoint)."""
    job = _api(_client().cancel, job_id)
    console.print(f"job {job_id} is {job['state']}")


@main.command()
@click.argument("job_id")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None)
def download(job_id: str, name: str, output: Path | None) -> None:
    """Download artifact NAME of a job (e.g. samples/step-000500.png)."""
    target = output or Path(name.rsplit("/", 1)[-1])
    _api(_client().download, job_id, name, target)
    console.print(f"wrote {target}")


@main.group()
def datasets() -> None:
    """Upload and list datasets (npz, zip/tar of images, MNIST idx files)."""


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="dataset name (default: the file name)")
def upload_dataset(path: Path, name: str | None) -> None:
    """Upload PATH; use its id in a spec as {"source": "dataset", "dataset_id": ...}."""
    dataset = _api(_client().upload_dataset, path, name or path.stem)
    console.print(
        f"dataset [bold]{dataset['id']}[/]: {dataset['items']} {dataset['kind']} {dataset['shape']}"
    )


@datasets.command("list")
def list_datasets() -> None:
    table = Table("id", "name", "kind", "items", "shape", "bytes")
    for dataset in _api(_client().datasets):
        table.add_row(
            dataset["id"],
            dataset["name"],
            dataset["kind"],
            str(dataset["items"]),
            str(dataset["shape"]),
            str(dataset["size"]),
        )
    console.print(table)


def _api(call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None


def _follow(client: Client, job_id: str) -> dict[str, Any]:
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
        for job in client.follow(job_id, interval_s=0.5):
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
    console.print(
        f"job {job_id} {job['state']}" + (f": {job['error']}" if job.get("error") else "")
    )
    return job


def _print_artifacts(client: Client, job: dict[str, Any], settings: Settings) -> None:
    from urllib.parse import urlparse

    artifacts = client.artifacts(job["id"])
    table = Table("artifact", "kind", "step", "bytes", title=f"artifacts of job {job['id']}")
    for artifact in artifacts:
        table.add_row(
            artifact["name"], artifact["kind"], str(artifact["step"] or ""), str(artifact["size"])
        )
    console.print(table)
    storage = urlparse(settings.storage_url)
    if storage.scheme == "file":
        console.print(f"files: {Path(storage.path) / 'jobs' / job['id']}")
    console.print(
        f"download: ganforge download {job['id']} <artifact>   "
        f"or GET {settings.api_url}/api/v1/jobs/{job['id']}/artifacts/<artifact>"
    )


# The pool commands live in their own module; importing it registers them on `main`.
from shared.cli import pool as _pool  # noqa: E402,F401
from shared.cli import tokens as _tokens  # noqa: E402,F401
