"""`ganforge show` as people read it: one job on a screen (what it is, where it stands, how
it is doing, what it asked for), where the API's JSON (`show --json`) runs to a hundred lines."""

from __future__ import annotations

from typing import Any

from cli.output import console, moment

# The order a spec's sections are listed in; others follow in the spec's own order.
SPEC_ORDER = ("model", "latent", "data", "loss", "train", "resources")


def print_job(job: dict[str, Any]) -> None:
    """The job's identity, state, progress, last figures, warnings, error and spec."""
    from cli.quality import COLUMNS, figure_text, warning_span  # cli.quality imports cli.jobs

    rows: list[tuple[str, str]] = [
        ("job", f"{job['id']}  {job['kind']} {job['name']!r} of {job['owner']}"),
        ("state", _state(job)),
        ("times", _times(job)),
    ]
    progress = job.get("progress") or {}
    if progress.get("step") is not None and progress.get("total_steps"):
        shown = f"step {progress['step']:,} of {progress['total_steps']:,}"
        if progress.get("images_per_second"):
            shown += f", {progress['images_per_second']:,.0f} images/s"
        rows.append(("progress", shown))
    children = job.get("children")
    if children:  # a sweep: where its children stand (`ganforge jobs --parent` lists them)
        states = ", ".join(f"{n} {state}" for state, n in sorted(children["states"].items()))
        rows.append(("children", f"{children['total']}: {states}"))
    evaluation = job.get("evaluation") or {}
    figures = [
        f"{title} {figure_text(key, evaluation[key], evaluation.get(f'{key}_interval'))}"
        for key, title in COLUMNS
        if key in evaluation and not key.endswith(("samples", "held_out"))
    ]
    if figures:
        counted = evaluation.get("samples") or evaluation.get("class_samples")
        behind = f", {counted:,} samples" if counted else ""
        rows.append((f"quality (step {evaluation.get('step', '?'):,}{behind})", "; ".join(figures)))
    rows += [("warning", f"{warning_span(w)}: {w['message']}") for w in job.get("warnings") or []]
    if job.get("error"):
        rows.append(("error", str(job["error"])))
    for place in job.get("placement") or []:
        rows.append(("placement", f"{place['node']}: devices {place['devices']}"))
    rows += [(f"spec {name}", text) for name, text in spec_lines(job.get("spec") or {})]
    width = max(len(label) for label, _ in rows)
    for label, text in rows:
        console.print(f"{label:<{width}}  {text}", highlight=False, markup=False)


def spec_lines(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Each top-level section of a spec on a line, nested fields dotted: ("train", "steps
    10000, batch_size 64, lr 0.0002")."""
    ordered = [n for n in SPEC_ORDER if n in spec] + [n for n in spec if n not in SPEC_ORDER]
    lines = []
    for name in ordered:
        value = spec[name]
        if isinstance(value, dict):
            lines.append((name, ", ".join(f"{k} {v}" for k, v in _flat(value)) or "{}"))
        else:
            lines.append((name, str(value)))
    return lines


def _flat(section: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    flat: list[tuple[str, Any]] = []
    for key, value in section.items():
        if isinstance(value, dict):
            flat += _flat(value, f"{prefix}{key}.")
        else:
            flat.append((f"{prefix}{key}", value))
    return flat


def _state(job: dict[str, Any]) -> str:
    text = f"{job['state']} (attempt {job['attempt']} of {job['max_attempts']})"
    queue = job.get("queue") or {}
    if queue.get("position") is not None:
        text += f", position {queue['position']} in the queue"
    if queue.get("waiting_reason"):
        text += f": {queue['waiting_reason']}"
    return f"{text}; priority {job['priority']}, {job['devices']} device(s)"


def _times(job: dict[str, Any]) -> str:
    parts = []
    for key, label in (("created_at", "created"), ("started_at", "started"),
                       ("finished_at", "finished")):  # fmt: skip
        if job.get(key):
            parts.append(f"{label} {moment(job[key])}")
    return ", ".join(parts)
