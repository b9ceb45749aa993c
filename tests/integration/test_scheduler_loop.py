"""The scheduler over the real PostgreSQL and Redis: placement with reservations, messages to
each node's own queue, waiting reasons, dead nodes, the lease; compare-and-set under real
concurrency."""

import json
import threading
from datetime import timedelta
from typing import Any

import redis
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from scheduler.backoff import BrokerGate, NodeBackoff
from scheduler.placing import commit_placements
from scheduler.process import acquire_lease, plan_pass, reconcile_once, schedule_once
from shared.config import Settings
from shared.db import session_scope
from shared.messaging import broker_reachable, make_celery
from shared.models import Job, JobEvent, Node, Reservation, User, utcnow
from shared.pool.nodes import register_node
from shared.pool.reconciler import requeue_unclaimed
from shared.pool.reservations import claim_share, release_stale
from shared.states import JobState, transition
from tests.helpers import auth, train_request


def submit(client: FlaskClient, token: str, **spec: Any) -> str:
    response = client.post("/api/v1/jobs", json=train_request(**spec), headers=auth(token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def add_node(settings: Settings, name: str, slots: int = 2) -> str:
    queue = f"{settings.queue}.node.{name}"
    devices = [{"index": i, "kind": "cpu", "model": "cpu slot"} for i in range(slots)]
    with session_scope(settings.database_url) as session:
        register_node(session, name=name, queue=queue, devices=devices, labels={})
    return queue


def job_row(settings: Settings, job_id: str) -> Job:
    with session_scope(settings.database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_a_placed_job_holds_its_devices_and_its_message_goes_to_that_nodes_queue(
    client: FlaskClient, alice: str, settings: Settings, redis_client: redis.Redis
) -> None:
    queue = add_node(settings, "n1")
    job_id = submit(client, alice, resources={"devices": 2})
    assert schedule_once(settings, make_celery(settings)) == 1
    job = job_row(settings, job_id)
    assert job.state == "scheduled" and job.task_id and job.waiting_reason is None
    with session_scope(settings.database_url) as session:
        held = session.execute(select(Reservation.node_name, Reservation.device_index)).all()
    assert sorted(held) == [("n1", 0), ("n1", 1)]
    messages = redis_client.lrange(queue, 0, -1)
    assert len(messages) == 1
    envelope = json.loads(messages[0])
    args, kwargs, _ = json.loads(__import__("base64").b64decode(envelope["body"]))
    assert args == [] and kwargs == {"job_id": job_id, "attempt": 1}
    assert schedule_once(settings, make_celery(settings)) == 0, "a scheduled job is not resent"
    placed = [{"node": "n1", "devices": [0, 1]}]
    assert client.get(f"/api/v1/jobs/{job_id}", headers=auth(alice)).get_json()["placement"] == (
        placed
    )
    # Finished (its devices are released by the scheduler's next clean-up): the job still
    # says where it ran.
    assert client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth(alice)).status_code == 202
    finished = client.get(f"/api/v1/jobs/{job_id}", headers=auth(alice)).get_json()
    assert finished["state"] == "cancelled" and finished["placement"] == placed


def test_a_job_without_free_devices_stays_queued_with_its_position_and_reason(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    add_node(settings, "n1", slots=1)
    first, second, third = (submit(client, alice) for _ in range(3))
    assert schedule_once(settings, make_celery(settings)) == 1
    assert job_row(settings, first).state == "scheduled"
    waiting = job_row(settings, third)
    assert (waiting.state, waiting.queue_position) == ("queued", 2)
    assert waiting.waiting_reason == "waiting for 1 device to free up; 1 job ahead"
    body = client.get(f"/api/v1/jobs/{second}", headers=auth(alice)).get_json()
    assert body["queue"] == {"position": 1, "waiting_reason": "waiting for 1 device to free up"}


def test_while_the_broker_is_down_a_job_is_given_back_once_then_waits_until_a_probe_reaches_it(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    add_node(settings, "n1")
    job_id = submit(client, alice)
    unreachable = settings.with_(broker_url="redis://127.0.0.1:1/0")
    down = make_celery(unreachable)
    down.conf.task_publish_retry_policy = {"max_retries": 0}
    broker = [down]
    clock = [0.0]
    gate = BrokerGate(probe=lambda: broker_reachable(broker[0], 1.0), clock=lambda: clock[0])
    for _ in range(6):  # passes a few seconds apart, each probing the broker
        assert schedule_once(unreachable, down, gate) == 0
        clock[0] += 3
    with session_scope(settings.database_url) as session:
        moves = session.execute(
            select(JobEvent.from_state, JobEvent.to_state, JobEvent.reason).where(
                JobEvent.job_id == job_id
            )
        ).all()
        held = session.scalar(select(func.count()).select_from(Reservation))
    assert sorted((m.from_state or "", m.to_state) for m in moves) == [
        ("", "queued"),
        ("queued", "scheduled"),
        ("scheduled", "queued"),
    ], "one round trip for the whole outage"
    assert any(m.reason.startswith("broker unavailable") for m in moves)
    assert held == 0, "the devices it was placed on are free again"
    job = job_row(settings, job_id)
    assert (job.state, job.waiting_reason) == ("queued", "waiting for the message broker")

    broker[0] = make_celery(settings)  # the broker answers again
    assert schedule_once(settings, broker[0], gate) == 1
    assert job_row(settings, job_id).state == "scheduled"
    assert gate.down_since is None


def test_a_silent_node_is_dead_and_its_running_job_is_requeued_for_its_next_attempt(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    add_node(settings, "n1")
    job_id = submit(client, alice)
    schedule_once(settings, make_celery(settings))
    with session_scope(settings.database_url) as session:
        assert transition(session, job_id, JobState.SCHEDULED, JobState.RUNNING, "go", attempt=1)
        stale = utcnow() - timedelta(seconds=settings.node_timeout_s + 1)
        session.execute(update(Node).values(heartbeat_at=stale))
    reconcile_once(settings)
    job = job_row(settings, job_id)
    assert (job.state, job.attempt) == ("queued", 2)
    with session_scope(settings.database_url) as session:
        assert session.get(Node, "n1").state == "dead"
        assert session.scalar(select(func.count()).select_from(Reservation)) == 0
        path = [
            e.to_state
            for e in session.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
            )
        ]
    assert path == ["queued", "scheduled", "running", "lost", "queued"]


def test_only_one_scheduler_holds_the_lease_until_it_expires(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        assert acquire_lease(session, "first", lease_s=60)
    with session_scope(settings.database_url) as session:
        assert not acquire_lease(session, "second", lease_s=60)
        assert acquire_lease(session, "first", lease_s=-1), "the holder renews (here: expires it)"
    with session_scope(settings.database_url) as session:
        assert acquire_lease(session, "second", lease_s=60), "a stand-by takes an expired lease"


def test_only_one_of_many_racing_claims_wins(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    job_id = submit(client, alice)
    with session_scope(settings.database_url) as session:
        transition(session, job_id, JobState.QUEUED, JobState.SCHEDULED, "dispatched")
    barrier = threading.Barrier(6)
    wins: list[bool] = []

    def claim() -> None:
        barrier.wait()
        with session_scope(settings.database_url) as session:
            wins.append(
                transition(session, job_id, JobState.SCHEDULED, JobState.RUNNING, "go", attempt=1)
            )

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 5 + [True]
    with session_scope(settings.database_url) as session:
        running_events = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.to_state == "running")
        ).all()
    assert len(running_events) == 1


def test_a_waiting_higher_priority_job_asks_a_preemptible_running_job_to_stop(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    add_node(settings, "n1", slots=1)
    low = submit(client, alice, resources={"devices": 1, "preemptible": True})
    schedule_once(settings, make_celery(settings))
    with session_scope(settings.database_url) as session:
        assert transition(session, low, JobState.SCHEDULED, JobState.RUNNING, "go", attempt=1)
    urgent = submit(client, alice)
    with session_scope(settings.database_url) as session:
        session.execute(update(Job).where(Job.id == urgent).values(priority=3))
    assert schedule_once(settings, make_celery(settings)) == 0
    assert job_row(settings, low).preempt_reason == f"preempted for job {urgent} (priority 3)"
    waiting = job_row(settings, urgent)
    assert waiting.waiting_reason == "waiting for 1 device: 1 preemptible job stopping"


def _finish_running(settings: Settings, seconds: float) -> None:
    """Every scheduled job runs for `seconds` (back-dated) and succeeds, freeing its devices."""
    with session_scope(settings.database_url) as session:
        for job_id in session.scalars(select(Job.id).where(Job.state == "scheduled")).all():
            transition(session, job_id, JobState.SCHEDULED, JobState.RUNNING, "go", attempt=1)
            transition(session, job_id, JobState.RUNNING, JobState.SUCCEEDED, "done", attempt=1)
            ended = utcnow()
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(started_at=ended - timedelta(seconds=seconds), finished_at=ended)
            )
        session.execute(Reservation.__table__.delete())


def test_fair_share_alternates_two_users_over_a_sequence_of_passes(
    client: FlaskClient, alice: str, bob: str, settings: Settings
) -> None:
    add_node(settings, "n1", slots=1)
    owner = {submit(client, alice): "alice" for _ in range(4)}
    owner |= {submit(client, bob): "bob" for _ in range(4)}  # all of bob's come later
    served = []
    for _ in range(8):
        schedule_once(settings, make_celery(settings))
        with session_scope(settings.database_url) as session:
            (placed,) = session.scalars(select(Job.id).where(Job.state == "scheduled")).all()
        served.append(owner[placed])
        _finish_running(settings, seconds=60)
    assert served == ["alice", "bob"] * 4


def test_a_device_quota_holds_and_says_why_the_job_waits(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    add_node(settings, "n1", slots=2)
    response = client.put(
        "/api/v1/admin/users/alice/quota", json={"max_devices": 1}, headers=auth(alice)
    )
    assert response.status_code == 403, "admins only"
    with session_scope(settings.database_url) as session:
        session.execute(update(User).where(User.name == "alice").values(max_devices=1))
    first, second = submit(client, alice), submit(client, alice)
    assert schedule_once(settings, make_celery(settings)) == 1
    assert job_row(settings, first).state == "scheduled"
    waiting = job_row(settings, second)
    assert (waiting.state, waiting.waiting_reason) == (
        "queued",
        "over your quota of 1 devices (holding 1)",
    )


def test_a_placed_job_whose_message_was_lost_is_requeued_and_runs_once(
    client: FlaskClient, alice: str, settings: Settings, redis_client: redis.Redis
) -> None:
    queue = add_node(settings, "n1")
    job_id = submit(client, alice)
    schedule_once(settings, make_celery(settings))
    lost_message = redis_client.lrange(queue, 0, -1)
    redis_client.delete(queue)  # the broker lost it (a restart without persistence)

    assert reconcile_once(settings) == [], "within the claim timeout nothing moves"
    with session_scope(settings.database_url) as session:
        stale = utcnow() - timedelta(seconds=settings.claim_timeout_s + 1)
        session.execute(update(Job).where(Job.id == job_id).values(updated_at=stale))
    backoff = NodeBackoff(first_backoff_s=settings.claim_timeout_s)
    assert reconcile_once(settings, backoff=backoff) == [job_id]
    assert backoff.shunned() == {"n1"}, "the node that left it unclaimed is backed off"
    job = job_row(settings, job_id)
    assert (job.state, job.attempt) == ("queued", 1)

    other = add_node(settings, "n2", slots=4)  # roomier: the policy alone would pick n1
    assert schedule_once(settings, make_celery(settings), shunned=backoff.shunned()) == 1
    assert len(redis_client.lrange(other, 0, -1)) == 1 and lost_message
    assert redis_client.llen(queue) == 0
    with session_scope(settings.database_url) as session:
        assert claim_share(session, job_id, 1, "n1") is None, "the late old message starts nothing"
        assert claim_share(session, job_id, 1, "n2") is not None
        assert claim_share(session, job_id, 1, "n2") is None, "a duplicate starts nothing"


def test_a_claim_racing_the_cleanup_pass_waits_for_the_job_instead_of_deadlocking(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    """The scheduler's cleanup changes the job, then its reservations; a worker's claim takes
    the job row first too, so it waits instead of holding a reservation the cleanup needs."""
    add_node(settings, "n1")
    job_id = submit(client, alice)
    assert schedule_once(settings, make_celery(settings)) == 1
    with session_scope(settings.database_url) as session:
        stale = utcnow() - timedelta(seconds=settings.claim_timeout_s + 1)
        session.execute(update(Job).where(Job.id == job_id).values(updated_at=stale))
    errors: list[BaseException] = []
    claimed: list[object] = []

    def worker_claims() -> None:
        try:
            with session_scope(settings.database_url) as session:
                share = claim_share(session, job_id, 1, "n1")
                if share is not None:
                    transition(session, job_id, JobState.SCHEDULED, JobState.RUNNING, "started")
                claimed.append(share)
        except BaseException as error:
            errors.append(error)

    with session_scope(settings.database_url) as session:
        assert requeue_unclaimed(session, settings.claim_timeout_s) == [job_id]  # job locked
        racer = threading.Thread(target=worker_claims)
        racer.start()
        racer.join(0.5)  # the claim is now waiting on a lock
        assert release_stale(session) == 1
    racer.join(10)
    assert not errors, errors
    assert claimed == [None], "the requeued attempt's share is gone: the late claim starts nothing"
    assert job_row(settings, job_id).state == "queued"


def test_a_chunk_of_placements_drops_only_the_job_whose_device_was_taken_or_that_was_cancelled(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    for name in ("n1", "n2", "n3"):
        add_node(settings, name, slots=1)
    jobs = [submit(client, alice) for _ in range(3)]
    pool, decided = plan_pass(settings)
    assert sorted(p.job_id for p in decided.placements) == sorted(jobs)
    taken, cancelled, placed = decided.placements
    with session_scope(settings.database_url) as session:  # since the pool was read
        ((node, (device,)),) = taken.parts
        session.add(Reservation(node_name=node, device_index=device, job_id=placed.job_id,
                                attempt=9))  # fmt: skip
    cancel = client.post(f"/api/v1/jobs/{cancelled.job_id}/cancel", headers=auth(alice))
    assert cancel.status_code == 202

    task_ids = commit_placements(settings, pool, decided.placements)
    assert list(task_ids) == [placed.job_id]
    assert job_row(settings, placed.job_id).task_id == task_ids[placed.job_id]
    assert job_row(settings, taken.job_id).state == "queued", "left for the next pass"
    assert job_row(settings, cancelled.job_id).state == "cancelled"
    with session_scope(settings.database_url) as session:
        held = session.execute(
            select(Reservation.job_id, Reservation.attempt, Reservation.node_name)
        ).all()
        moves = session.execute(
            select(JobEvent.job_id).where(JobEvent.to_state == "scheduled")
        ).all()
    assert sorted(held) == sorted(
        [(placed.job_id, 9, node), (placed.job_id, 1, placed.parts[0][0])]
    )
    assert moves == [(placed.job_id,)], "one move, one event, for the one job placed"
