"""Admission: a job that no node of the pool could ever run is refused at submission, naming
what it asks for, instead of waiting in the queue for ever.

Each API process remembers the live nodes' sizes and labels for LIVE_NODES_S (a `LiveNodes`
of its app, api/state.py) and decides admissions on that memory, not on a query at every
submission (bench/api.py: each statement of a submission cost the API about as much as the
rest of its Python). Only an admission is decided on the memory: a job it would refuse is
checked again against the nodes as they are now, so no job is refused for a node that
registered a moment ago. What the memory can let through is a job that only a node
gone within the last LIVE_NODES_S (dead, or relabelled) could have run; it waits in the
queue, saying why, as every queued job does when the pool shrinks under it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import Node
from shared.pool.nodes import NodeState, device_kind
from shared.pool.plan_values import NodeView, QueuedJob
from shared.pool.policy import never_fits

# How old the remembered pool may be when it admits a job: nodes register and die at the
# pace of machines (a heartbeat timeout is tens of seconds), and a second turns a burst of
# submissions' queries into one a second.
LIVE_NODES_S = 1.0

# What admission reads of each live node, built once.
_LIVE_NODES = select(Node.name, Node.devices, Node.labels).where(Node.state != NodeState.DEAD.value)


class LiveNodes:
    """The live nodes of one database as last read, for `ttl_s` of `clock` (tests pass
    their own clock); an API process's threads share its app's."""

    def __init__(
        self, ttl_s: float = LIVE_NODES_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        # (valid until, nodes), replaced whole: threads read it without a lock.
        self._read: tuple[float, list[NodeView]] | None = None

    def remembered(self) -> list[NodeView] | None:
        """The nodes read within `ttl_s`, or None."""
        read = self._read
        if read is None or read[0] <= self.clock():
            return None
        return read[1]

    def remember(self, views: list[NodeView]) -> None:
        self._read = (self.clock() + self.ttl_s, views)


def check_admission(
    session: Session, job: QueuedJob, memory: LiveNodes | None = None
) -> str | None:
    """Why the pool could never run the job, or None. With no node registered yet (a pool
    starting up) every job is admitted and waits for one. With a `memory` (the API's), an
    admission may rest on it; a refusal is always decided on the nodes as they are now."""
    if memory is not None:
        remembered = memory.remembered()
        if remembered is not None and (not remembered or never_fits(job, remembered) is None):
            return None
    views = [
        NodeView(
            name=name,
            kind=device_kind(devices),
            total=len(devices),
            free=(),
            labels=labels or {},
        )
        for name, devices, labels in session.execute(_LIVE_NODES)
    ]
    if memory is not None:
        memory.remember(views)
    return never_fits(job, views) if views else None
