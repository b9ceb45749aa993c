"""Admission decides on the live nodes this process read within LIVE_NODES_S, but refuses only
on the nodes as they are now: a node registered a moment ago is never missed, a job no live
node fits is always refused, and a node gone is forgotten once the memory lapses."""

from __future__ import annotations

from sqlalchemy import update

from shared.config import Settings
from shared.db import session_scope
from shared.models import Node, utcnow
from shared.pool.admission import LIVE_NODES_S, LiveNodes, check_admission
from shared.pool.nodes import NodeState, register_node
from shared.pool.plan_values import QueuedJob


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def add_node(settings: Settings, name: str, slots: int) -> None:
    with session_scope(settings.database_url) as session:
        devices = [{"index": i, "kind": "cpu"} for i in range(slots)]
        register_node(session, name=name, queue=f"q-{name}", devices=devices, labels={})


def verdict(settings: Settings, nodes: LiveNodes, devices: int) -> str | None:
    job = QueuedJob(id="", owner="alice", devices=devices, created_at=utcnow())
    with session_scope(settings.database_url) as session:
        return check_admission(session, job, nodes)


def test_a_job_no_live_node_fits_is_refused_just_after_the_nodes_were_read(
    settings: Settings,
) -> None:
    nodes = LiveNodes(LIVE_NODES_S, FakeClock())
    add_node(settings, "small", 2)
    assert verdict(settings, nodes, 2) is None
    refused = verdict(settings, nodes, 4)
    assert refused == "asks for 4 devices; the largest fitting node has 2"


def test_a_node_registered_a_moment_ago_admits_the_job_only_it_fits(settings: Settings) -> None:
    nodes = LiveNodes(LIVE_NODES_S, FakeClock())
    add_node(settings, "small", 2)
    assert verdict(settings, nodes, 2) is None, "the memory now holds the small node alone"
    add_node(settings, "big", 8)
    assert verdict(settings, nodes, 8) is None


def test_a_node_gone_admits_jobs_for_at_most_the_memory_s_bound(settings: Settings) -> None:
    clock = FakeClock()
    nodes = LiveNodes(LIVE_NODES_S, clock)
    add_node(settings, "small", 2)
    add_node(settings, "big", 8)
    assert verdict(settings, nodes, 8) is None
    with session_scope(settings.database_url) as session:
        session.execute(update(Node).where(Node.name == "big").values(state=NodeState.DEAD.value))
    clock.now += LIVE_NODES_S / 2
    assert verdict(settings, nodes, 8) is None, "admitted on the remembered pool; it waits"
    clock.now += LIVE_NODES_S / 2
    assert verdict(settings, nodes, 8) == "asks for 8 devices; the largest fitting node has 2"
