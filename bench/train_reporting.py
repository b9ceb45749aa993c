"""What the service's reporting path costs a training step: the engine with the real
`JobReporter` talking to a node agent, against the same engine with null hooks.

    python -m bench.train_overhead --case reporting [--repeats 3] [--steps N] [--threads 1]

Both sides train the ring8 recipe (examples/ring8.json: mlp PacGAN2 width 128, batch 512, EMA,
cosine lr; a checkpoint every 5,000 steps, samples and evaluations every 2,500) with the same
seed, so they do the same arithmetic. The reporting side is what rank 0 of an attempt runs: a
`JobReporter` (worker/reporter.py) over an `AgentLink` to an `AttemptAgent` in a process of
its own (as the worker's is in the service), on a running job row in a fresh PostgreSQL
database and a moto S3 bucket started for the run, at the service's default intervals (a
progress row every 2 s at most, the live log every 5 s); its log lines go to a file, as a
rank's stderr goes to the launcher's output. The null side hands every outlet to
`bench.hooks.QuietHooks`. Each pair runs both, in
alternating order, so a noisy neighbour hurts both alike; a short warm-up of each side first
pays the one-time imports and connections (matplotlib, TensorBoard, the first upload), which a
real run pays once in 30,000 steps.

The timed window is bench.train_overhead's: from the report of step 10 to the report of the
last step, so set-up and the final snapshot with its flush are outside it. The default steps
(checkpoint_every + 10) put exactly one checkpoint period in it: one checkpoint and its flush,
two sample grids, two evaluations, and the progress rows and live-log uploads of its seconds.
The overhead is (reporting window / null window - 1) per pair, a percentage of the null
side's step; goal <= 1%. Beside it, measured directly within the window: the time the
training thread spent inside each hook, and every agent round trip by operation and thread.

The agent runs in a process of its own, as it does in the service (the worker's): its
threads and boto3's do not take the training thread's GIL. (Until 2026-12-06 it ran in this
process, which made the figure an upper bound: the live log's uploads through an in-process
agent held the GIL for tens of milliseconds at a time.)
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.hooks import QuietHooks
from bench.lab import Lab, bench_token, given_or_own_lab, lab_settings, running_job, write_json
from shared.specs import TrainSpec
from shared.storage import open_storage
from worker.agent.server import AttemptAgent, AttemptFolders
from worker.channel.link import AgentLink
from worker.channel.ticket import JobTicket
from worker.gan.hooks import ProgressReport, TrainingHooks
from worker.gan.train import train
from worker.gan.train_common import REPORT_EVERY
from worker.reporter import JobReporter

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "ring8.json"
WINDOW_START = REPORT_EVERY
GOAL_PERCENT = 1.0
# The warm-up: every outlet once (a checkpoint and its flush, samples, an evaluation).
WARM_UP = {"steps": 20, "checkpoint_every": 10, "sample_every": 10}


@dataclass
class Call:
    """One timed call: a hook on the training thread, or an agent round trip on any thread."""

    name: str
    thread: str
    began: float
    seconds: float


@dataclass
class Clocked:
    """Hooks that time the hooks they wrap: when each report arrives (the window's ends) and
    how long the training thread spends inside each outlet. Both sides wear it, so its own
    cost is the same on both."""

    inner: TrainingHooks
    reports: dict[int, float] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def _timed(self, name: str, action: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        try:
            return action()
        finally:
            self.calls.append(Call(name, "training", began, time.perf_counter() - began))

    def should_stop(self) -> bool:
        return bool(self._timed("should_stop", self.inner.should_stop))

    def report_progress(self, report: ProgressReport) -> None:
        self.reports[report.step] = time.perf_counter()
        self._timed("report_progress", lambda: self.inner.report_progress(report))

    def save_checkpoint(self, step: int, data: bytes) -> None:
        self._timed("save_checkpoint", lambda: self.inner.save_checkpoint(step, data))

    def save_samples(self, step: int, png: bytes) -> None:
        self._timed("save_samples", lambda: self.inner.save_samples(step, png))

    def log(self, line: str) -> None:
        self._timed("log", lambda: self.inner.log(line))

    def report_evaluation(self, step: int, metrics: dict[str, Any], png: bytes | None) -> None:
        self._timed("report_evaluation", lambda: self.inner.report_evaluation(step, metrics, png))

    def warn(self, message: str, stop: bool, kind: str = "collapse") -> None:
        self._timed("warn", lambda: self.inner.warn(message, stop, kind))

    def end_warning(self, kind: str, message: str) -> None:
        self._timed("end_warning", lambda: self.inner.end_warning(kind, message))

    def cached(self, name: str, make: Callable[[], bytes]) -> bytes:
        return bytes(self._timed("cached", lambda: self.inner.cached(name, make)))

    def window(self, last: int) -> tuple[float, float]:
        return self.reports[WINDOW_START], self.reports[last]


def clock_link(link: AgentLink, calls: list[Call]) -> None:
    """Record every round trip `link` makes (the training thread's and the live log's)."""
    call = link.call

    def clocked(op: str, payload: Any = b"", **args: Any) -> tuple[dict[str, Any], bytes]:
        began = time.perf_counter()
        try:
            return call(op, payload, **args)
        finally:
            seconds = time.perf_counter() - began
            calls.append(Call(op, threading.current_thread().name, began, seconds))

    link.call = clocked  # type: ignore[method-assign]


def ring8_spec(steps: int | None = None, **overrides: int) -> TrainSpec:
    """The README's ring8 recipe; `steps` defaults to one checkpoint period past the window's
    start."""
    raw = json.loads(RECIPE.read_text())
    steps = steps or raw["checkpoint_every"] + WINDOW_START
    return TrainSpec.model_validate({**raw, **overrides, "train": {**raw["train"], "steps": steps}})


def null_run(spec: TrainSpec) -> tuple[Clocked, list[Call]]:
    hooks = Clocked(QuietHooks())
    train(spec, hooks=hooks)
    return hooks, []


def reporting_run(spec: TrainSpec, settings: Any, folder: Path) -> tuple[Clocked, list[Call]]:
    """One attempt of a fresh running job, as rank 0 runs it: the reporter's last flush and
    close after training, as worker/rank.py does (outside the window)."""
    job_id = running_job(settings, spec.model_dump(mode="json"))
    link_calls: list[Call] = []
    with (
        agent_process(settings, job_id, folder / job_id) as (link, violation),
        (folder / f"{job_id}.stderr").open("w") as stderr,
        contextlib.redirect_stderr(stderr),
    ):
        ticket = JobTicket.from_json(link.call("ticket")[0]["ticket"])
        reporter = JobReporter(link, ticket, 0)
        clock_link(link, link_calls)
        hooks = Clocked(reporter)
        try:
            train(spec, hooks=hooks)
        finally:
            reporter.flush()
            reporter.close()
            link.close_quietly()
    assert violation() is None, violation()
    return hooks, link_calls


@contextlib.contextmanager
def agent_process(
    settings: Any, job_id: str, folder: Path
) -> Iterator[tuple[AgentLink, Callable[[], str | None]]]:
    """The attempt's node agent in a process of its own, as in the service (the worker's),
    admitting this process's session; a link to it, and what it found wrong once closed."""
    context = multiprocessing.get_context("spawn")  # no fork of a process with torch's threads
    ours, theirs = context.Pipe()
    process = context.Process(
        target=_serve_agent, args=(settings, job_id, folder, theirs), daemon=True
    )
    process.start()
    violation: list[str | None] = []
    try:
        if not ours.poll(120):
            raise RuntimeError("the agent process did not start")
        yield AgentLink(ours.recv()), lambda: violation[0] if violation else None
    finally:
        ours.send("stop")
        if ours.poll(60):
            violation.append(ours.recv())
        process.join(60)


def _serve_agent(settings: Any, job_id: str, folder: Path, pipe: Any) -> None:
    torch.set_num_threads(1)
    folders = AttemptFolders(folder / "attempt-1")
    folders.create()
    store = open_storage(settings, patient=True)  # a worker's store: retrying
    with AttemptAgent(settings, store, job_id, 1, folders) as agent:
        agent.admit(os.getsid(0))  # the parent's session: spawn keeps it
        pipe.send(str(agent.socket_path))
        pipe.recv()
        pipe.send(agent.violation)


def _within(calls: list[Call], window: tuple[float, float]) -> list[Call]:
    return [c for c in calls if window[0] <= c.began < window[1]]


def _totals(calls: list[Call], key: Callable[[Call], str]) -> dict[str, tuple[int, float]]:
    found: dict[str, list[float]] = defaultdict(list)
    for call in calls:
        found[key(call)].append(call.seconds)
    return {name: (len(seconds), sum(seconds)) for name, seconds in sorted(found.items())}


def _summary(values: list[float], digits: int = 3) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "all": [round(v, digits) for v in values],
    }


def measure(steps: int | None, repeats: int, lab: Lab | None = None) -> dict[str, Any]:
    spec = ring8_spec(steps)
    last = spec.train.steps
    windows: dict[str, list[float]] = {"null": [], "reporting": []}
    hooks_ms: dict[str, dict[str, list[float]]] = {"null": {}, "reporting": {}}
    agent_ms: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with (
        tempfile.TemporaryDirectory(prefix="ganforge-bench-reporting-") as scratch,
        given_or_own_lab(lab) as lab,
        lab_settings(lab, Path(scratch)) as settings,
    ):
        bench_token(settings)
        folder = Path(scratch) / "attempts"
        sides: dict[str, Callable[[TrainSpec], tuple[Clocked, list[Call]]]] = {
            "null": null_run,
            "reporting": lambda s: reporting_run(s, settings, folder),
        }
        for run in sides.values():
            run(ring8_spec(WARM_UP["steps"], **{k: v for k, v in WARM_UP.items() if k != "steps"}))
        for repeat in range(repeats):
            order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
            for name in order:
                hooks, link_calls = sides[name](spec)
                window = hooks.window(last)
                windows[name].append(window[1] - window[0])
                inside = _totals(_within(hooks.calls, window), lambda c: c.name)
                for hook, (_, seconds) in inside.items():
                    hooks_ms[name].setdefault(hook, []).append(seconds * 1000)
                hooks_ms[name].setdefault("all hooks", []).append(
                    sum(seconds for _, seconds in inside.values()) * 1000
                )
                trips = _totals(_within(link_calls, window), lambda c: f"{c.name} ({c.thread})")
                for trip, figures in trips.items():
                    agent_ms[trip].append(figures)
            print(f"pair {repeat + 1}/{repeats}: null {windows['null'][-1]:.2f} s, reporting "
                  f"{windows['reporting'][-1]:.2f} s", flush=True)  # fmt: skip
    return _figures(spec, windows, hooks_ms, agent_ms)


def _figures(
    spec: TrainSpec,
    windows: dict[str, list[float]],
    hooks_ms: dict[str, dict[str, list[float]]],
    agent_ms: dict[str, list[tuple[int, float]]],
) -> dict[str, Any]:
    steps = spec.train.steps - WINDOW_START
    overhead = [
        (r / n - 1) * 100 for n, r in zip(windows["null"], windows["reporting"], strict=True)
    ]
    inside = [
        ms / 10 / s
        for ms, s in zip(hooks_ms["reporting"]["all hooks"], windows["reporting"], strict=True)
    ]
    return {
        "recipe": str(RECIPE.relative_to(RECIPE.parents[1])),
        "steps": spec.train.steps,
        "window_steps": steps,
        "batch": spec.train.batch_size,
        "threads": torch.get_num_threads(),
        "pairs": len(overhead),
        "step_ms": {side: _summary([s / steps * 1000 for s in w]) for side, w in windows.items()},
        "overhead_percent": _summary(overhead, 2),
        "inside_hooks_percent": _summary(inside, 2),
        "hooks_ms": {
            side: {h: _summary(v, 1) for h, v in hooks.items()} for side, hooks in hooks_ms.items()
        },
        "agent_round_trips": {
            trip: {
                "calls": statistics.median(n for n, _ in runs),
                "ms": _summary([s * 1000 for _, s in runs], 1),
            }
            for trip, runs in sorted(agent_ms.items())
        },
        "goal": {
            "percent_at_most": GOAL_PERCENT,
            "met": statistics.median(overhead) <= GOAL_PERCENT,
        },
    }


def print_figures(figures: dict[str, Any]) -> None:
    step, over, inside = (
        figures["step_ms"],
        figures["overhead_percent"],
        figures["inside_hooks_percent"],
    )
    print(f"ring8 recipe, {figures['window_steps']} steps timed, batch {figures['batch']}, "
          f"threads {figures['threads']}, {figures['pairs']} pairs")  # fmt: skip
    for side in ("null", "reporting"):
        s = step[side]
        print(f"  {side:10s} {s['median']:.3f} ms/step ({s['min']:.3f}-{s['max']:.3f})")
    print(f"  overhead   {over['median']:+.2f}% of a step ({over['min']:+.2f} to"
          f" {over['max']:+.2f}); goal <= {GOAL_PERCENT:g}%")  # fmt: skip
    print(f"  inside the reporter's hooks, training thread: {inside['median']:.2f}% of the window"
          f" ({inside['min']:.2f}-{inside['max']:.2f})")  # fmt: skip
    for hook, ms in figures["hooks_ms"]["reporting"].items():
        print(f"    {hook:20s} {ms['median']:8.1f} ms ({ms['min']:.1f}-{ms['max']:.1f})")
    print("  agent round trips in the window (calls, ms):")
    for trip, figures_ in figures["agent_round_trips"].items():
        ms = figures_["ms"]
        print(f"    {trip:32s} {figures_['calls']:5g} {ms['median']:8.1f} ms"
              f" ({ms['min']:.1f}-{ms['max']:.1f})")  # fmt: skip


def run(
    steps: int | None, repeats: int, json_path: Path | None, lab: Lab | None = None
) -> dict[str, Any]:
    """Measure, print, and write `json_path` (bench `train_reporting`)."""
    figures = measure(steps, repeats, lab)
    print_figures(figures)
    return write_json(json_path, "train_reporting", figures)
