"""`ganforge quality` (a job's evaluations over steps) and `ganforge evaluate` (score any
checkpoint of a training job with an `evaluate` job)."""

from __future__ import annotations

from typing import Any

import click

from cli import api_client, main
from cli.jobs import finish, follow
from cli.output import console, json_option, print_json, print_table

# The figures `quality` shows as columns, in this order, when the evaluations have them;
# names as worker/gan/evaluation.py reports them.
COLUMNS = (
    ("modes_covered", "modes"),
    ("high_quality", "high quality"),
    ("kl_from_uniform", "KL"),
    ("w1", "W1"),
    ("classes_covered", "classes"),
    ("class_kl", "class KL"),
    ("frechet_distance", "FD"),
    # Point data without known modes (uploads): against held-back points, with intervals.
    ("points_precision", "precision"),
    ("points_recall", "recall"),
    ("points_density", "density"),
    ("points_coverage", "coverage"),
    ("points_held_out", "held out"),
    ("points_samples", "generated"),
    ("path_length", "PPL"),
    ("spread", "spread"),
)


@main.command()
@click.argument("job_id")
@click.option("--from-step", type=int, default=None, help="First step shown.")
@click.option("--to-step", type=int, default=None, help="Last step shown.")
@json_option
def quality(job_id: str, from_step: int | None, to_step: int | None, as_json: bool) -> None:
    """A job's quality evaluations over steps, and its warnings."""
    client = api_client()
    series = client.metrics(job_id, kind="eval", from_step=from_step, to_step=to_step)
    if as_json:
        return print_json({"metrics": series})
    evaluations = [(entry["step"], entry["eval"]) for entry in series]
    shown = [(key, title) for key, title in COLUMNS if any(key in e for _, e in evaluations)]
    # A figure the evaluation lacks is blank; one it reports as null (undefined) is "n/a".
    rows = [
        [step, *(_cell(key, e[key], e) if key in e else "" for key, _ in shown)]
        for step, e in evaluations
    ]
    print_table(("step", *(title for _, title in shown)), rows, whole=())
    if evaluations and evaluations[-1][1].get("points"):  # why a point file was not scored
        console.print(evaluations[-1][1]["points"], highlight=False)
    for warning in client.job(job_id).get("warnings") or []:
        console.print(f"[yellow]warning[/] (step {warning['step']}): {warning['message']}")


def _cell(key: str, value: Any, evaluation: dict[str, Any] | None = None) -> str:
    """A figure as text; with its interval when the evaluation has `<key>_low`/`_high`."""
    if value is None:
        return "n/a"
    if key == "high_quality":
        return f"{100 * value:.1f}%"
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    low, high = (evaluation or {}).get(f"{key}_low"), (evaluation or {}).get(f"{key}_high")
    if isinstance(low, float) and isinstance(high, float):
        text += f" [{low:.3g}, {high:.3g}]"
    return text


@main.command()
@click.argument("job_id")
@click.option("--step", type=int, default=None, help="The checkpoint's step (default: latest).")
@click.option("--watch/--no-watch", default=True, help="Follow the evaluation to its end.")
def evaluate(job_id: str, step: int | None, watch: bool) -> None:
    """Score a training job's checkpoint as training does."""
    client = api_client()
    job = client.submit("evaluate", f"evaluate-{job_id[:8]}", {"job_id": job_id, "step": step})
    console.print(f"submitted evaluate job [bold]{job['id']}[/] ({job['state']})")
    if watch:
        done = follow(client, job["id"])
        evaluation = done.get("evaluation") or {}
        figures = {k: v for k, v in evaluation.items() if not isinstance(v, (list, str))}
        console.print(", ".join(f"{k} {_cell(k, v)}" for k, v in figures.items()))
        finish(done)
