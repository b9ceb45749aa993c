"""The training hooks as the service implements them: the outside world of one rank.

Rank 0 reports progress to the job row (at most every few seconds), writes checkpoints,
sample grids, metrics.jsonl and log.txt, all through the attempt's node agent (the rank
holds no credentials: worker/channel/link.py), and with each flush
the run's pictures of itself: TensorBoard events, the fixed-noise timeline and the loss and
metric curves. Between flushes, log.txt and metrics.jsonl go up from a background thread
within GANFORGE_LOG_FLUSH_S of a new line (worker/livelog.py), so a job's log can be
followed while it runs. Every rank answers `should_stop` from the supervisor's stop file. The
engine sees only the TrainingHooks protocol.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from shared import artifact_names as names
from worker.channel.link import AgentLink
from worker.channel.ticket import JobTicket
from worker.curves_process import CurvesProcess, draw_here
from worker.gan.hooks import ProgressReport
from worker.livelog import LiveUpload
from worker.tensorboard_log import EVAL_PREFIX, TensorBoardLog
from worker.timeline import Timeline

# An artifact to store: (name, kind, bytes, step).
Item = tuple[str, str, bytes, int | None]

# A job's first attempt (shared.jobs.requests creates jobs at it; every requeue counts one up).
FIRST_ATTEMPT = 1
# How stale a run's answer to "should I stop?" may be: a cancel or preemption waits this much
# longer at most, against a stat of the stop file every few steps.
STOP_FILE_CHECK_S = 0.2


class JobReporter:
    """TrainingHooks for a job attempt. Only rank 0 writes anything."""

    def __init__(self, link: AgentLink, ticket: JobTicket, rank: int):
        self.link, self.ticket = link, ticket
        self.job_id, self.attempt, self.rank = ticket.job_id, ticket.attempt, rank
        self.stop_file = Path(ticket.stop_file)
        if self.writes:  # the outages the agent's writes waited through, in the job's log
            link.on_note = self.log
        self._metrics_lines: list[str] = []
        self._log_lines: list[str] = []
        self._last_db_write = 0.0
        # Why the run asked itself to stop (a collapse warning with on_collapse: stop).
        self.stop_reason: str | None = None
        self._stop_seen, self._stop_checked = False, float("-inf")
        self._last_eval_step = 0
        # This attempt's warnings ({step, message}, as on the job), marked on curves.png.
        self._warnings: list[dict[str, Any]] = []
        # The latest progress not yet in the database (reports are throttled).
        self._unwritten: tuple[dict[str, Any], dict[str, float]] | None = None
        self._history: dict[str, bytes] = {}  # earlier attempts' metrics.jsonl / log.txt
        self._tensorboard: TensorBoardLog | None = None
        self._timeline: Timeline | None = None
        # Draws curves.png at checkpoints away from the training thread (started at the
        # first one); the run's last flush draws it synchronously.
        self._curves: CurvesProcess | None = None
        # A checkpoint's flush, uploading beside training; the next flush waits for it.
        self._flusher: ThreadPoolExecutor | None = None
        self._flushing: Future[None] | None = None
        # log.txt and metrics.jsonl as they grow: uploaded in the background on one try each
        # (a store that is away is tried again an interval later, never waited for), and by
        # the flushes; the lock keeps an older snapshot from landing after a newer one.
        self._logs_lock = threading.Lock()
        self._live = LiveUpload(self._upload_live, ticket.log_flush_s)
        # Progress rows go from a background thread too, at once when due: the training
        # thread does not wait for the agent's database round trip. The run's last report
        # and the flushes write synchronously, so the row names the last step done.
        self._progress_lock = threading.Lock()  # one writer at a time (sender or a flush)
        self._pending_lock = threading.Lock()  # held only to swap `_unwritten`
        self._progress_sender = LiveUpload(self._write_progress, 0.0)
        # What `store_with_logs` stored: the lines of metrics.jsonl and log.txt it held, and
        # metrics.jsonl itself; a flush with no line since has nothing to upload again.
        self._stored: tuple[int, int, bytes] | None = None

    @property
    def writes(self) -> bool:
        return self.rank == 0

    def should_stop(self) -> bool:
        """Whether the supervisor asked the run to stop: its stop file, looked at once per
        STOP_FILE_CHECK_S at most (the engine asks every few steps, a system call each that
        is nearly always answered no) and remembered once seen."""
        if self._stop_seen or self.stop_reason is not None:
            return True
        now = time.monotonic()
        if now - self._stop_checked >= STOP_FILE_CHECK_S:
            self._stop_checked = now
            self._stop_seen = self.stop_file.exists()
        return self._stop_seen

    def report_progress(self, report: ProgressReport) -> None:
        if not self.writes:
            return
        self._metrics_lines.append(
            json.dumps({"step": report.step, "time": time.time(), **report.metrics})
        )
        self._live.mark()
        ips = report.images_per_second
        self.tensorboard.scalars(report.step, {**report.metrics, "Timing/images_per_second": ips})
        remaining = report.total_steps - report.step
        latest = (
            {
                "step": report.step,
                "total_steps": report.total_steps,
                "fraction": round(report.step / report.total_steps, 6),
                "images_per_second": round(ips, 3),
                "eta_seconds": round(remaining * _seconds_per_step(report), 1),
            },
            report.metrics,
        )
        with self._pending_lock:
            self._unwritten = latest
        if report.step >= report.total_steps:
            self._write_progress()
        elif time.monotonic() - self._last_db_write >= self.ticket.progress_interval_s:
            self._last_db_write = time.monotonic()
            self._progress_sender.mark()

    def _write_progress(self) -> None:
        """Write the latest report to the job row. Reports in between are throttled, so the
        end of a run (finished, cancelled, failed) writes the one still unwritten: the job's
        progress always names the last step done."""
        with self._progress_lock:
            with self._pending_lock:
                unwritten, self._unwritten = self._unwritten, None
            if unwritten is None:
                return
            self._last_db_write = time.monotonic()
            reply, _ = self.link.call("progress", progress=unwritten[0], metrics=unwritten[1])
            if not reply["written"]:
                # Training goes on through a database outage; the next report catches up.
                self._last_db_write = 0.0
                with self._pending_lock:
                    if self._unwritten is None:
                        self._unwritten = unwritten

    def report_evaluation(self, step: int, metrics: dict[str, Any], png: bytes | None) -> None:
        """One line of metrics.jsonl (`"eval": {...}`), the job's latest evaluation, and its
        picture as the artifact `evaluations/step-NNNNNN.png`."""
        if not self.writes:
            return
        if png is not None:
            self._put(names.evaluation_name(step), "evaluation", png, step)
            self.tensorboard.image("evaluation", step, png)
        self.tensorboard.scalars(step, metrics, prefix=EVAL_PREFIX)
        self._metrics_lines.append(json.dumps({"step": step, "time": time.time(), "eval": metrics}))
        self._live.mark()
        self._last_eval_step = step
        shown = {k: v for k, v in metrics.items() if not isinstance(v, (list, str))}
        self.log(
            f"evaluation at step {step}: " + ", ".join(f"{k} {_short(v)}" for k, v in shown.items())
        )
        self.link.call("evaluation", step=step, metrics=metrics)

    def cached(self, name: str, make: Callable[[], bytes]) -> bytes:
        """Shared by every job through the store (`cache/<name>`); made and stored when
        missing. Any rank may ask; writes are whole objects, so a race stores one copy. (The
        agent stores nothing made by a job that runs a researcher's code.)"""
        reply, data = self.link.call("cache_get", name=name)
        if reply["found"]:
            return data
        data = make()
        self.link.call("cache_put", data, name=name)
        return data

    def warn(self, message: str, stop: bool, kind: str = "collapse") -> None:
        """A warning on the job, from the latest evaluation's step, and in its log; `stop` also
        ends the run (the supervisor records the job failed with `message` once the ranks
        have stopped)."""
        if not self.writes:
            return
        self.log(f"WARNING: {message}" + ("; stopping (on_collapse: stop)" if stop else ""))
        self.link.call("warning", step=self._last_eval_step, message=message, kind=kind)
        self._warnings.append({"step": self._last_eval_step, "message": message})
        if stop and self.stop_reason is None:
            self.stop_reason = message
            self.stop_file.touch()

    def end_warning(self, kind: str, message: str) -> None:
        """The job's open warning of `kind` (if any) ends at the latest evaluation's step."""
        if not self.writes:
            return
        reply, _ = self.link.call(
            "warning", step=self._last_eval_step, message=message, kind=kind, ends=True
        )
        if reply.get("ended"):
            self.log(f"warning over: {message}")

    def save_checkpoint(self, step: int, data: bytes) -> None:
        if self.writes:
            self._put(names.checkpoint_name(step), "checkpoint", data, step)
            self._flush(final=False)

    def save_samples(self, step: int, png: bytes) -> None:
        if self.writes:
            self._put(names.samples_name(step), "samples", png, step)
            self.tensorboard.image("samples", step, png)
            if self._timeline is None:
                self._timeline = Timeline(self._read_previous(names.TIMELINE_NAME))
            self._timeline.add(step, png)

    @property
    def work_folder(self) -> Path:
        """The attempt's work folder, the one place its processes may write: removed by the
        supervisor when the attempt ends and by the worker when it starts, so scratch kept
        here outlives no kill."""
        return Path(self.ticket.work_folder)

    @property
    def tensorboard(self) -> TensorBoardLog:
        """This attempt's event file, opened on first use (rank 0 only), in the attempt's work
        folder beside the stop file."""
        if self._tensorboard is None:
            self._tensorboard = TensorBoardLog(self.work_folder / f"tensorboard-{self.attempt}")
        return self._tensorboard

    def log(self, line: str) -> None:
        """A line of the job's log.txt (rank 0's); every rank also prints it to its stderr,
        the launcher's output, which a job that dies without a word quotes in its error."""
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if not self.writes:
            print(f"{stamp} [attempt {self.attempt}] [rank {self.rank}] {line}", file=sys.stderr)
            return
        entry = f"{stamp} [attempt {self.attempt}] {line}"
        self._log_lines.append(entry)
        self._live.mark()
        print(entry, file=sys.stderr, flush=True)

    def flush(self) -> None:
        """Upload metrics.jsonl and log.txt as they stand, and the run's pictures redrawn from
        them, in one batch (at checkpoints and at the end).

        Earlier attempts' lines are kept: the files are read back and appended to once per
        attempt, so a resumed job has one continuous history. The latest progress is written
        first, so a checkpoint's step and the job's progress agree."""
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        """`final`: the run's last, which has stored everything when it returns. A
        checkpoint's flush uploads from a thread of its own while training goes on (its
        curves.png drawn in a child process and stored when done); the next flush waits for
        it and raises its error, if any (a fenced attempt, an agent gone)."""
        if not self.writes:
            return
        self._write_progress()
        flushing, self._flushing = self._flushing, None
        if flushing is not None:
            flushing.result()
        if final:
            self._put_logs(patient=True, pictures=True, final_curves=True)
            return
        if self._flusher is None:
            self._flusher = ThreadPoolExecutor(1, thread_name_prefix="checkpoint-flush")
        self._flushing = self._flusher.submit(self._put_logs, True, True, False)

    def close(self) -> None:
        """Stop the background log upload: a long-lived process (the warm sampler) runs many
        jobs' reporters, and each would otherwise keep its thread."""
        self._live.close()
        self._progress_sender.close()
        if self._flusher is not None:
            self._flusher.shutdown(wait=True)
        if self._curves is not None:
            self._curves.close()

    def _upload_live(self) -> None:
        """The background upload: one try (the agent's patient store would wait out an outage
        for minutes), so the next interval tries again instead."""
        self._put_logs(patient=False)

    def store_with_logs(self, items: Sequence[Item]) -> None:
        """Store a run's outputs together with log.txt and metrics.jsonl as they stand, in one
        batch (a short job's last writes, in the round trips of one); the flush that ends
        the run uploads the logs again only if a line came after."""
        if not self.writes:
            self._put_batch(items, patient=True)
            return
        with self._logs_lock:
            self._live.taken()
            files, metrics = self._log_files(patient=True)
            self._put_batch([*items, *files], patient=True)
            self._stored = (len(self._metrics_lines), len(self._log_lines), metrics)

    def _put_logs(self, patient: bool, pictures: bool = False, final_curves: bool = True) -> None:
        """Upload metrics.jsonl and log.txt as they stand now; with `pictures`, the run's
        pictures drawn from them go in the same batch (a flush: one round trip to the agent
        where the pictures took one each)."""
        with self._logs_lock:
            files: list[Item] = []
            stored = self._stored
            if patient:
                self._live.taken()  # this snapshot holds every line marked so far
            if (
                patient
                and stored is not None
                and stored[:2] == (len(self._metrics_lines), len(self._log_lines))
            ):
                metrics = stored[2]  # nothing new since `store_with_logs`
            else:
                files, metrics = self._log_files(patient)
            if pictures:
                files += self._pictures(metrics, final_curves)
            self._put_batch(files, patient)

    def _log_files(self, patient: bool) -> tuple[list[Item], bytes]:
        """metrics.jsonl and log.txt as they stand, each after earlier attempts' lines."""
        metrics = self._with_history(names.METRICS_NAME, self._metrics_lines[:], patient)
        logged = self._with_history(names.LOG_NAME, self._log_lines[:], patient)
        files: list[Item] = [
            (names.METRICS_NAME, "metrics", metrics, None),
            (names.LOG_NAME, "log", logged, None),
        ]
        return files, metrics

    def _pictures(self, metrics_jsonl: bytes, final_curves: bool) -> list[Item]:
        """The run's own pictures, redrawn from everything so far: TensorBoard's event file
        for this attempt, the fixed-noise timeline GIF, and the loss and metric curves (drawn
        here only for the run's last flush; a checkpoint's are drawn in the background and
        stored on their own)."""
        pictures: list[Item] = []
        if self._tensorboard is not None:
            events = self._tensorboard.event_file()
            pictures.append((names.tensorboard_name(self.attempt), "tensorboard", events, None))
        timeline = self._timeline.gif() if self._timeline is not None else None
        if timeline:
            pictures.append((names.TIMELINE_NAME, "timeline", timeline, None))
        if not final_curves:
            if self._curves is None:
                self._curves = CurvesProcess(self._store_curves)
            self._curves.request(metrics_jsonl, self._warnings[:])
            return pictures
        curves = (
            self._curves.draw_now(metrics_jsonl, self._warnings[:])
            if self._curves
            else draw_here(metrics_jsonl, self._warnings)
        )
        if curves:
            pictures.append((names.CURVES_NAME, "curves", curves, None))
        return pictures

    def _store_curves(self, picture: bytes) -> None:
        self._put(names.CURVES_NAME, "curves", picture, None)

    def _with_history(self, name: str, lines: list[str], patient: bool) -> bytes:
        history = self._history.get(name)
        if history is None:
            history = self._read_previous(name, patient)
            self._history[name] = history
        return history + "".join(line + "\n" for line in lines).encode()

    def _read_previous(self, name: str, patient: bool = True) -> bytes:
        """What earlier attempts stored under `name`. The first attempt has none (a job starts
        at attempt 1 and every later run of it gets a higher one), so it reads nothing: a
        short job's end is not two store round trips longer for files that cannot exist."""
        if self.attempt <= FIRST_ATTEMPT:
            return b""
        reply, data = self.link.call("previous", name=name, patient=patient)
        return data if reply["found"] else b""

    def _put(self, name: str, kind: str, data: bytes, step: int | None) -> None:
        self.link.call("put", data, name=name, kind=kind, step=step)

    def _put_batch(self, items: Sequence[Item], patient: bool) -> None:
        """Artifacts stored together, in one request: the agent stores them in parallel and
        writes their rows in one transaction (worker/artifact_batch.py)."""
        if not items:
            return
        listed = [
            {"name": name, "kind": kind, "step": step, "size": len(data)}
            for name, kind, data, step in items
        ]
        self.link.call(
            "put_batch", [data for _, _, data, _ in items], items=listed, patient=patient
        )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _seconds_per_step(report: ProgressReport) -> float:
    return float(report.metrics.get("Timing/sec_per_step", 0.0))
