"""`ganforge quality` (a job's evaluations over steps) and `ganforge evaluate` (score any
checkpoint of a training job with an `evaluate` job)."""

from __future__ import annotations

from typing import Any

import click

from cli import api_client, main
from cli.job_ids import JOB_ID
from cli.jobs import finish, follow
from cli.output import console, json_option, print_json, print_table

# The figures `quality` shows as columns, in this order, when the evaluations have them;
# names as worker/gan/evaluation.py reports them. A figure with a stored 95% interval
# (`<name>_interval`) shows it beside the value, and the sample sizes behind them have
# columns of their own.
COLUMNS = (
    ("samples", "samples"),
    ("high_quality_samples", "high-quality samples"),
    ("modes_covered", "modes"),
    ("high_quality", "high quality"),
    ("kl_from_uniform", "KL"),
    ("w1", "W1"),
    ("class_samples", "samples"),
    ("classes_covered", "classes"),
    ("class_kl", "class KL"),
    # A conditional model: the share of its digits classified as the class asked for.
    ("class_accuracy", "as asked"),
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
@click.argument("job_id", type=JOB_ID)
@click.option("--from-step", type=int, default=None, help="First step shown.")
@click.option("--to-step", type=int, default=None, help="Last step shown.")
@json_option
def quality(job_id: str, from_step: int | None, to_step: int | None, as_json: bool) -> None:
    """A job's quality evaluations over steps, and its warnings.

    Each figure with a stored 95% interval shows it in brackets; each warning, the steps it
    began and ended at."""
    client = api_client()
    series = client.metrics(job_id, kind="eval", from_step=from_step, to_step=to_step)
    if as_json:
        return print_json({"metrics": series})
    evaluations = [(entry["step"], entry["eval"]) for entry in series]
    shown = [(key, title) for key, title in COLUMNS if any(key in e for _, e in evaluations)]
    # A figure the evaluation lacks is blank; one it reports as null (undefined) is "n/a".
    rows = [[step, *(_cell(key, e) for key, _ in shown)] for step, e in evaluations]
    print_table(("step", *(title for _, title in shown)), rows, whole=())
    if evaluations and evaluations[-1][1].get("points"):  # why a point file was not scored
        console.print(evaluations[-1][1]["points"], highlight=False)
    for warning in client.job(job_id).get("warnings") or []:
        console.print(f"[yellow]warning[/] ({warning_span(warning)}): {warning['message']}")


def warning_span(warning: dict[str, Any]) -> str:
    """When a warning held: from the step it began at to the one it ended at, or on."""
    ended = warning.get("ended_step")
    if ended is not None:
        return f"steps {warning['step']:,}-{ended:,}"
    if "ended_step" in warning:  # a warning that can end, and has not
        return f"from step {warning['step']:,}, still holds"
    return f"step {warning['step']:,}"


def _cell(key: str, evaluation: dict[str, Any]) -> str:
    """`key`'s figure in an evaluation, with its interval when one is stored."""
    if key not in evaluation:
        return ""
    return figure_text(key, evaluation[key], evaluation.get(f"{key}_interval"))


def figure_text(key: str, value: Any, interval: list[float] | None = None) -> str:
    """A figure as `quality` shows it: "n/a" when undefined, its interval in brackets."""
    if value is None:
        return "n/a"
    shown = _number(key, value)
    if interval:
        shown += f" [{_number(key, interval[0])}, {_number(key, interval[1])}]"
    return shown


def _number(key: str, value: Any) -> str:
    if key in ("high_quality", "class_accuracy"):
        return f"{100 * value:.1f}%"
    if isinstance(value, int):
        return f"{value:,}" if key.endswith("samples") else str(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@main.command()
@click.argument("job_id", type=JOB_ID)
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
        console.print(", ".join(f"{k} {_cell(k, evaluation)}" for k in figures))
        finish(done)
