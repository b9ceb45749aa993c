"""`ganforge tag / note / compare`: file runs under tags and a note, and read the runs of one
question side by side (GET /api/v1/compare): the spec fields that differ, each run's final
figures with their intervals, or one metric's curves over steps drawn in one picture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli import api_client, main
from cli.group import CliError, ExitCode
from cli.job_ids import JOB_ID, short_id
from cli.output import console, json_option, print_json, print_table
from cli.quality import COLUMNS, figure_text

# Figures where more is better: `--sort` puts the highest first. Every other figure (KL,
# class KL, FD, W1, PPL...) is a distance or an error, lowest first.
HIGHER_IS_BETTER = frozenset(
    {
        "high_quality",
        "modes_covered",
        "classes_covered",
        "points_coverage",
        "points_precision",
        "points_recall",
    }
)
TITLES = dict(COLUMNS)
SORT_HELP = (
    "Order by this figure (its name or column title, e.g. high_quality, KL) or differing spec "
    "field: highest first for high_quality, modes, classes, coverage, precision, recall; "
    "lowest first for the rest (KL, class KL, FD, W1) and for spec fields. Runs without it last."
)


@main.command()
@click.argument("job_id", type=JOB_ID)
@click.argument("tags", nargs=-1, required=True)
@click.option("--remove", is_flag=True, help="Take these tags off instead.")
def tag(job_id: str, tags: tuple[str, ...], remove: bool) -> None:
    """Add tags to a job (or --remove them).

    Tags are 1-40 letters, digits, `.`, `_`, `-` or `:`; a job has at most 20."""
    client = api_client()
    have = list(client.job(job_id).get("tags") or [])
    # Read, change, write: two people retagging one job at once may lose one's change.
    wanted = [t for t in have if t not in tags] if remove else list(dict.fromkeys([*have, *tags]))
    job = client.set_labels(job_id, tags=wanted)
    shown = ", ".join(job["tags"]) or "none"
    console.print(f"job {short_id(job_id)} tags: {shown}", highlight=False, markup=False)


@main.command()
@click.argument("job_id", type=JOB_ID)
@click.argument("text", nargs=-1, required=True)
def note(job_id: str, text: tuple[str, ...]) -> None:
    """Set a job's note ("" clears it).

    The words of TEXT are joined by spaces; at most 2,000 characters."""
    api_client().set_labels(job_id, note=" ".join(text))
    console.print(f"job {short_id(job_id)} noted", highlight=False)


@main.command()
@click.argument("job_ids", nargs=-1, type=JOB_ID, metavar="[JOB]...")
@click.option("--tag", "tags", multiple=True, help="Your jobs with this tag (repeat: all).")
@click.option("--sort", "sort_by", default=None, metavar="FIGURE", help=SORT_HELP)
@click.option("--metric", default=None, help="Draw this metric's curves (loss_g, high_quality).")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --metric: write the curves to this PNG.",
)
@json_option
def compare(
    job_ids: tuple[str, ...],
    tags: tuple[str, ...],
    sort_by: str | None,
    metric: str | None,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Runs side by side: what differs, and figures.

    Give jobs, --tag, or both. One row a run: the spec fields that differ between them, then
    its final figures as `value [low, high]`. --metric NAME --plot FILE draws NAME over steps
    for every run instead (a loss: loss_g, loss_d, or any name in metrics.jsonl)."""
    if not job_ids and not tags:
        raise CliError("give job ids, --tag TAG, or both", ExitCode.USAGE)
    client = api_client()
    if metric is not None or plot is not None:
        if metric is None or (plot is None and not as_json):
            raise CliError("--metric NAME and --plot FILE go together", ExitCode.USAGE)
        curves = client.curves(list(job_ids), list(tags), metric)
        if as_json:
            return print_json(curves)
        assert plot is not None
        draw_curves(curves, plot)
        console.print(f"wrote {plot}", highlight=False)
        return
    table = client.compare(list(job_ids), list(tags))
    if sort_by is not None:
        table = sorted_table(table, sort_by)
    if as_json:
        return print_json(table)
    print_comparison(table)


def sorted_table(table: dict[str, Any], sort_by: str) -> dict[str, Any]:
    """The comparison with its rows (and jobs) in `sort_by`'s order (SORT_HELP)."""
    column = _column(table, sort_by)
    group, name = column["group"], column["name"]
    descending = group == "figures" and name in HIGHER_IS_BETTER

    def key(row: dict[str, Any]) -> tuple[bool, Any]:
        value = row[group].get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return (True, 0)  # missing, null or not a number: after every number
        return (False, -value if descending else value)

    rows = sorted(table["rows"], key=key)
    order = {row["id"]: i for i, row in enumerate(rows)}
    jobs = sorted(table["jobs"], key=lambda job: order[job["id"]])
    return {**table, "rows": rows, "jobs": jobs}


def _column(table: dict[str, Any], wanted: str) -> dict[str, Any]:
    """The column `wanted` names: a figure by name or title (any case), or a spec path."""
    for column in table["columns"]:
        names = {column["name"].lower(), TITLES.get(column["name"], "").lower()}
        if wanted.lower() in names:
            return dict(column)
    known = ", ".join(c["name"] for c in table["columns"]) or "none"
    raise CliError(f"no column {wanted!r} to sort by; these runs have: {known}", ExitCode.USAGE)


def print_comparison(table: dict[str, Any]) -> None:
    """One row a run: id, name, state, tags, the differing spec fields, then the figures."""
    spec = [c["name"] for c in table["columns"] if c["group"] == "spec"]
    figures = [c["name"] for c in table["columns"] if c["group"] == "figures"]
    headers = ["id", "name", "state", "tags", *spec, *(TITLES.get(f, f) for f in figures)]
    rows = [
        [
            short_id(row["id"]),
            row["name"],
            row["state"],
            " ".join(row["tags"]),
            *(_spec_cell(row["spec"].get(path)) for path in spec),
            *(_figure_cell(row["figures"], name) for name in figures),
        ]
        for row in table["rows"]
    ]
    print_table(headers, rows, whole=("id",))
    same = table.get("same") or {}
    if same and not spec:
        console.print("the runs' specs are the same", highlight=False)


def _spec_cell(value: Any) -> str:
    if value is None:
        return "-"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _figure_cell(figures: dict[str, Any], name: str) -> str:
    if name not in figures:
        return ""
    if name == "step":
        return str(figures[name])
    return figure_text(name, figures[name], figures.get(f"{name}_interval"))


def draw_curves(curves: dict[str, Any], target: Path) -> None:
    """One picture: each run's curve of the metric over steps, named in the legend by its
    short id and name. Matplotlib is imported here alone: every other command starts
    without it."""
    drawn = [curve for curve in curves["curves"] if curve["points"]]
    if not drawn:
        raise CliError(f"none of these runs has recorded {curves['metric']} yet")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    try:
        for curve in drawn:
            steps = [point[0] for point in curve["points"]]
            values = [point[1] for point in curve["points"]]
            label = f"{short_id(curve['id'])} {curve['name']}"
            axes.plot(steps, values, label=label, linewidth=1.2)
        axes.set_xlabel("step")
        axes.set_ylabel(curves["metric"])
        axes.set_title(f"{curves['metric']} over steps, {len(drawn)} run(s)")
        axes.legend(fontsize="small")
        axes.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(target, format="png", dpi=100)
    finally:
        plt.close(figure)
    missing = [short_id(c["id"]) for c in curves["curves"] if not c["points"]]
    if missing:
        click.echo(f"no {curves['metric']} recorded by {', '.join(missing)}", err=True)
