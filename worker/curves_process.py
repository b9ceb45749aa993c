"""curves.png drawn in a process of its own, so the training thread does not wait for it.

A run redraws its loss and metric curves at every checkpoint: matplotlib takes 0.3-0.6 s
for a few hundred progress records, nearly all of it holding the GIL, which the training
loop would otherwise wait out (it was about half of what the reporting path cost a step,
bench.train_overhead --case reporting). So rank 0 hands the records to a long-lived child
(`python -m worker.curves_process`, started at the first checkpoint, on another core where
there is one) and stores the picture when it comes back; a newer request replaces one not
yet started. The run's last flush draws synchronously (in the child when it is up, else
here), so the final curves.png holds every record. The child is the rank's own: it runs in
the same sandbox, talks only over a socket pair, and reads EOF and exits when the rank goes.
If it cannot start or dies, drawing falls back to this process (a warning on stderr), which
is what every run did before.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.channel.frames import read_header, read_payload, send_message

# A PNG of curves is a few hundred KB; the bound only guards against a confused child.
MAX_PICTURE_BYTES = 256 << 20
MAX_RECORDS_BYTES = 1 << 40


def records_of(metrics_jsonl: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in metrics_jsonl.decode().splitlines() if line]


# A warning as curves.png marks it: {"step", "message"} (the job's warnings of this attempt).
MarkedWarning = dict[str, Any]


def draw_here(metrics_jsonl: bytes, warnings: list[MarkedWarning]) -> bytes | None:
    from worker.gan.curves_plot import curves_png  # matplotlib loads on rank 0 only

    return curves_png(records_of(metrics_jsonl), warnings)


class CurvesProcess:
    """Draws curves.png from metrics.jsonl in a child process; `deliver` stores each picture
    drawn in the background (it runs on this object's thread)."""

    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        self._deliver = deliver
        self._child: subprocess.Popen[bytes] | None = None
        self._connection: socket.socket | None = None
        self._broken = False
        # The latest records (and warnings) not yet handed to a draw.
        self._wanted: tuple[bytes, list[MarkedWarning]] | None = None
        self._busy = False
        self._closed = False
        self._changed = threading.Condition()
        self._child_lock = threading.Lock()  # one request at a time over the socket
        self._thread: threading.Thread | None = None

    def request(self, metrics_jsonl: bytes, warnings: list[MarkedWarning]) -> None:
        """Draw and deliver curves for these records soon; returns at once."""
        with self._changed:
            self._wanted = (metrics_jsonl, warnings)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="curves-process", daemon=True
                )
                self._thread.start()
            self._changed.notify_all()

    def draw_now(self, metrics_jsonl: bytes, warnings: list[MarkedWarning]) -> bytes | None:
        """The picture of these records, drawn before returning; a background draw still
        pending is dropped (this one is newer) and one under way is waited for, so its
        delivery cannot land after the caller stores this picture."""
        with self._changed:
            self._wanted = None
            while self._busy:
                self._changed.wait()
        return self._draw(metrics_jsonl, warnings)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        with self._child_lock:
            if self._connection is not None:
                self._connection.close()  # the child reads EOF and exits
                self._connection = None
            if self._child is not None:
                try:
                    self._child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._child.kill()
                self._child = None

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._wanted is None and not self._closed:
                    self._changed.wait()
                if self._closed or self._wanted is None:  # the wait ends on one or the other
                    return
                (records, warnings), self._wanted, self._busy = self._wanted, None, True
            try:
                picture = self._draw(records, warnings)
                if picture:
                    self._deliver(picture)
            except Exception as error:  # a background picture must not end the run
                print(f"curves.png not stored: {type(error).__name__}: {error}", file=sys.stderr)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _draw(self, metrics_jsonl: bytes, warnings: list[MarkedWarning]) -> bytes | None:
        with self._child_lock:
            if not self._broken:
                try:
                    return self._draw_in_child(metrics_jsonl, warnings)
                except (OSError, ValueError, RuntimeError) as error:
                    self._broken = True
                    print(
                        f"the curves process failed ({type(error).__name__}: {error}); "
                        "drawing curves in the rank",
                        file=sys.stderr,
                    )
        return draw_here(metrics_jsonl, warnings)

    def _draw_in_child(self, metrics_jsonl: bytes, warnings: list[MarkedWarning]) -> bytes | None:
        connection = self._connection or self._start()
        send_message(connection, {"op": "curves", "warnings": warnings}, metrics_jsonl)
        reply = read_header(connection)
        picture = read_payload(connection, MAX_PICTURE_BYTES)
        if not reply.get("ok"):
            raise RuntimeError(str(reply.get("error", "the curves process refused")))
        return picture or None

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # The child imports this very code, wherever the rank imported it from.
        root = str(Path(__file__).resolve().parent.parent)
        path = os.environ.get("PYTHONPATH")
        environment = {
            **os.environ,
            "PYTHONPATH": root + (os.pathsep + path if path else ""),
            "OMP_NUM_THREADS": "1",  # a thread of its own is all drawing needs
            "OPENBLAS_NUM_THREADS": "1",
        }
        with theirs:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "worker.curves_process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=environment,
            )
        self._connection = ours
        return ours


def serve(connection: socket.socket) -> None:
    """The child's loop: records in, PNG out, until the rank closes its end."""
    from worker.channel.frames import ChannelClosed

    while True:
        try:
            header = read_header(connection)
        except ChannelClosed:
            return
        records = read_payload(connection, MAX_RECORDS_BYTES)
        try:
            picture = draw_here(records, list(header.get("warnings") or [])) or b""
            send_message(connection, {"ok": True}, picture)
        except Exception as error:
            send_message(connection, {"ok": False, "error": f"{type(error).__name__}: {error}"})


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
