"""TensorBoard event files for a job: every progress report's losses and timings, every
evaluation's numbers and picture, and every sample grid, so `tensorboard --logdir` works on
a downloaded job (`tensorboard/events.out.tfevents.attempt-N`, one file per attempt, which
TensorBoard reads as one run).

tensorboardX supplies the format (its Event protobufs and record writer) without TensorFlow
or the tensorboard server. Its SummaryWriter is not used: it queues events to a background
thread, and its flush does not drain that queue, so a file read right after could miss the
latest events; writing synchronously makes `event_file()` exact. The file lives in the
attempt's work folder (which the node empties).
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary

# Evaluation numbers are grouped under this tag prefix, beside the losses' `Loss/...`.
EVAL_PREFIX = "Eval/"


class TensorBoardLog:
    """One attempt's event file, written as the run goes."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._writer = EventsWriter(str(folder / "events"))
        # A checkpoint's flush reads the file from its own thread while training writes on.
        self._lock = threading.Lock()

    def scalars(self, step: int, values: dict[str, Any], prefix: str = "") -> None:
        """Every number of `values` (lists, None and booleans skipped) as a scalar at `step`."""
        summary = Summary(
            value=[
                Summary.Value(tag=prefix + name, simple_value=float(value))
                for name, value in values.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)
            ]
        )
        if summary.value:
            self._write(step, summary)

    def image(self, tag: str, step: int, png: bytes) -> None:
        """A PNG as it is (TensorBoard decodes it), with its size read from its header."""
        with Image.open(io.BytesIO(png)) as picture:
            width, height = picture.size
            colours = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}.get(picture.mode, 3)
        encoded = Summary.Image(
            height=height, width=width, colorspace=colours, encoded_image_string=png
        )
        self._write(step, Summary(value=[Summary.Value(tag=tag, image=encoded)]))

    def event_file(self) -> bytes:
        """The event file as it stands, everything written so far included."""
        with self._lock:
            self._writer.flush()
            (path,) = self.folder.glob("events.out.tfevents.*")
            return path.read_bytes()

    def _write(self, step: int, summary: Summary) -> None:
        event = Event(wall_time=time.time(), step=step, summary=summary)
        with self._lock:
            self._writer.write_event(event)
