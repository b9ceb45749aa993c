"""`ganforge invert`: submit an `invert` sampling job (GAN inversion, shared/specs/inversion.py)
from flags, follow it, and print the distances it reached. The same job can be submitted as a
spec file with `ganforge submit --kind sample`; this builds that spec."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click

from cli import api_client, main
from cli.group import CliError, ExitCode
from cli.job_ids import JOB_ID
from cli.jobs import finish, follow
from cli.output import console
from shared.specs.inversion import DEFAULT_INVERT_LR, DEFAULT_INVERT_STEPS, DEFAULT_PRIOR_WEIGHT


@main.command()
@click.argument("job_id", type=JOB_ID)
@click.option("--dataset", "dataset_id", metavar="ID", help="Invert images of this upload.")
@click.option(
    "--artifact",
    metavar="JOB/NAME",
    help="Invert the cells of a PNG artifact of one of your jobs, e.g. <job>/grid.png.",
)
@click.option("--indices", metavar="I,J,...", help="Which images (positions, from 0).")
@click.option("--count", type=int, default=None, help="The first N images (default 16).")
@click.option("--step", type=int, default=None, help="The checkpoint's step (default: latest).")
@click.option("--steps", type=int, default=DEFAULT_INVERT_STEPS, show_default=True)
@click.option("--lr", type=float, default=DEFAULT_INVERT_LR, show_default=True)
@click.option("--loss", type=click.Choice(["pixel", "feature"]), default="pixel", show_default=True)
@click.option("--prior-weight", type=float, default=DEFAULT_PRIOR_WEIGHT, show_default=True)
@click.option("--restarts", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--truncation", type=float, default=None, help="ψ in (0, 1]: draw G(ψ·z).")
@click.option("--watch/--no-watch", default=True, help="Follow the job and print distances.")
def invert(
    job_id: str,
    dataset_id: str | None,
    artifact: str | None,
    indices: str | None,
    count: int | None,
    step: int | None,
    steps: int,
    lr: float,
    loss: str,
    prior_weight: float,
    restarts: int,
    seed: int,
    truncation: float | None,
    watch: bool,
) -> None:
    """Invert images: the latents a job's generator draws them from.

    GAN inversion: optimises one latent per image so that the generator's image matches it."""
    spec = {
        "job_id": job_id,
        "step": step,
        "truncation": truncation,
        "invert": {
            "images": _images(dataset_id, artifact, indices, count),
            "steps": steps,
            "lr": lr,
            "loss": loss,
            "prior_weight": prior_weight,
            "restarts": restarts,
            "seed": seed,
        },
    }
    client = api_client()
    job = client.submit("sample", f"invert-{job_id[:8]}", spec)
    console.print(f"submitted invert job [bold]{job['id']}[/] ({job['state']})")
    if not watch:
        return
    done = follow(client, job["id"])
    if done["state"] == "succeeded":
        with tempfile.TemporaryDirectory() as folder:
            report_path = client.download(job["id"], "inversion.json", Path(folder) / "r.json")
            _print_report(json.loads(report_path.read_text()))
    finish(done)


def _images(
    dataset_id: str | None, artifact: str | None, indices: str | None, count: int | None
) -> dict[str, Any]:
    if (dataset_id is None) == (artifact is None):
        raise CliError("give --dataset ID or --artifact JOB/NAME (one of them)", ExitCode.USAGE)
    if dataset_id is not None:
        images: dict[str, Any] = {"dataset_id": dataset_id}
    else:
        owner, _, name = (artifact or "").partition("/")
        if not owner or not name:
            raise CliError(f"--artifact {artifact!r}: write JOB/NAME", ExitCode.USAGE)
        images = {"job_id": owner, "name": name}
    if indices is not None:
        try:
            images["indices"] = [int(part) for part in indices.split(",") if part.strip()]
        except ValueError:
            message = f"--indices {indices!r}: integers, comma-separated"
            raise CliError(message, ExitCode.USAGE) from None
    if count is not None:
        images["count"] = count
    return images


def _print_report(report: dict[str, Any]) -> None:
    for image in report["images"]:
        console.print(
            f"image {image['index']}: MSE {image['mse']:.4g} (from {image['initial_mse']:.4g}), "
            f"RMS {image['rms_levels']:.3g} levels"
        )
    console.print(
        f"mean MSE {report['mean_mse']:.4g} (from {report['mean_initial_mse']:.4g}), "
        f"mean RMS {report['mean_rms_levels']:.3g} levels; latents in latents.npy"
    )
