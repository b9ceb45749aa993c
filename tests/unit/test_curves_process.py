"""curves.png drawn away from the training thread (worker/curves_process.py): in a child
process, delivered when done, never after the run's last picture, and drawn in the rank
when the child is gone."""

from __future__ import annotations

import json
import os
import threading

import pytest

from worker.curves_process import CurvesProcess

pytestmark = pytest.mark.processes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _metrics(steps: int) -> bytes:
    lines = [
        json.dumps({"step": s, "time": float(s), "Loss/D/loss": 1.0 / s}) for s in range(1, steps)
    ]
    return "\n".join(lines).encode() + b"\n"


def test_a_checkpoint_picture_comes_from_a_child_and_the_last_one_is_drawn_after_it() -> None:
    delivered: list[bytes] = []
    arrived = threading.Event()

    def deliver(picture: bytes) -> None:
        delivered.append(picture)
        arrived.set()

    curves = CurvesProcess(deliver)
    try:
        curves.request(_metrics(50), [{"step": 20, "message": "modes dropped"}])
        assert arrived.wait(60), "no picture delivered from the background"
        child = curves._child
        assert child is not None and child.pid != os.getpid() and child.poll() is None
        assert delivered[0].startswith(PNG_MAGIC)

        curves.request(_metrics(60), [])
        final = curves.draw_now(_metrics(70), [])  # drops or waits for the one before
        assert final is not None and final.startswith(PNG_MAGIC)
        count = len(delivered)
        curves.close()
        assert len(delivered) == count  # nothing lands after the last picture
        assert child.wait(10) == 0  # the child exits on EOF
    finally:
        curves.close()


def test_a_child_that_dies_leaves_the_drawing_to_the_rank() -> None:
    curves = CurvesProcess(lambda picture: None)
    try:
        assert curves.draw_now(_metrics(20), []) is not None  # starts the child
        assert curves._child is not None
        curves._child.kill()
        curves._child.wait(10)
        picture = curves.draw_now(_metrics(30), [])
        assert picture is not None and picture.startswith(PNG_MAGIC)
        assert curves._broken
    finally:
        curves.close()
