"""Where a gang's ranks meet: node rank 0's agent picks its node's address and a free port and
publishes them with the attempt; the other nodes' agents wait for them. The ranks get the
answer from their agent, never from the database (they cannot reach it)."""

from __future__ import annotations

import socket
import time

from sqlalchemy import select, update

from shared.config import Settings
from shared.db import session_scope
from shared.models import Job
from worker.channel.link import AgentUnavailableError
from worker.node import node_address

# A gang's other nodes wait this long for node rank 0 to publish its rendezvous: its worker
# may be busy starting (torch import, data download) or its message still in flight.
RENDEZVOUS_TIMEOUT_S = 300.0
RENDEZVOUS_POLL_S = 0.2


class RendezvousError(AgentUnavailableError):
    """The gang's rank-0 node never published where to meet: the attempt is lost."""


def free_port() -> int:
    """A TCP port free on this node now (rank 0's process group store binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


def meeting_point(settings: Settings, job_id: str, attempt: int, node_rank: int) -> tuple[str, int]:
    if node_rank == 0:
        address, port = node_address(settings), free_port()
        with session_scope(settings.database_url) as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.attempt == attempt)
                .values(rendezvous=f"{attempt}@{address}:{port}")
            )
        return address, port
    deadline = time.monotonic() + RENDEZVOUS_TIMEOUT_S
    while time.monotonic() < deadline:
        with session_scope(settings.database_url) as session:
            published = session.scalar(select(Job.rendezvous).where(Job.id == job_id))
        if published and published.startswith(f"{attempt}@"):
            address, _, port_text = published.partition("@")[2].rpartition(":")
            return address, int(port_text)
        time.sleep(RENDEZVOUS_POLL_S)
    raise RendezvousError(
        f"node rank 0 of attempt {attempt} published no rendezvous in {RENDEZVOUS_TIMEOUT_S:.0f} s"
    )
