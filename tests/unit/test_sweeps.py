"""Sweeps through the API and the scheduler's pass: children created with the sweep, only
`max_parallel` of them offered for placement, halving stops through the cancel path, the
sweep's one aggregate state, cancel cascading."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from scheduler.process import plan_pass
from scheduler.sweep_pass import SweepPass
from shared.config import Settings
from shared.db import session_scope
from shared.jobs.reports import report_evaluation
from shared.models import Job, JobEvent
from shared.pool.nodes import register_node
from shared.pool.reconciler import reconcile
from shared.states import JobState
from shared.sweeps.progress import advance_sweep, unfinished_sweeps
from tests.helpers import RING_SPEC, auth
from tests.unit.job_factories import move

S = JobState
SWEEP: dict[str, Any] = {
    "base": RING_SPEC,
    "grid": {"loss.name": ["non_saturating", "hinge"], "train.seed": [0, 1, 2]},
    "max_parallel": 2,
    "stop": {"on_collapse": True, "halving": {"figure": "high_quality", "rungs": [20]}},
}


def submit(client: FlaskClient, token: str, spec: dict[str, Any] = SWEEP) -> dict[str, Any]:
    response = client.post(
        "/api/v1/jobs", json={"kind": "sweep", "name": "lr", "spec": spec}, headers=auth(token)
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def children(client: FlaskClient, token: str, sweep_id: str) -> list[dict[str, Any]]:
    listed = client.get(f"/api/v1/jobs?parent={sweep_id}&limit=500", headers=auth(token))
    assert listed.status_code == 200
    return sorted(listed.get_json()["jobs"], key=lambda j: int(j["name"].rsplit("/", 1)[1]))


def advance(settings: Settings, sweep_id: str) -> Job:
    with session_scope(settings.database_url) as session:
        advance_sweep(session, sweep_id)
    with session_scope(settings.database_url) as session:
        sweep = session.get(Job, sweep_id)
        assert sweep is not None
        session.expunge(sweep)
        return sweep


def add_node(settings: Settings, slots: int) -> None:
    with session_scope(settings.database_url) as session:
        devices = [{"index": i, "kind": "cpu"} for i in range(slots)]
        register_node(session, name="n1", queue="q-n1", devices=devices, labels={})


def test_a_sweep_creates_its_children_and_shows_them(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    sweep = submit(client, alice)
    assert sweep["kind"] == "sweep" and sweep["state"] == "queued" and sweep["devices"] == 0
    assert sweep["children"]["total"] == 6 and sweep["children"]["states"] == {"queued": 6}
    kids = children(client, alice, sweep["id"])
    assert [k["name"] for k in kids] == [f"lr/{i}" for i in range(6)]
    assert sweep["children"]["ids"] == [k["id"] for k in kids]
    assert {(k["spec"]["loss"]["name"], k["spec"]["train"]["seed"]) for k in kids} == {
        (loss, seed) for loss in ("non_saturating", "hinge") for seed in (0, 1, 2)
    }
    assert all(k["kind"] == "train" and k["spec"]["on_collapse"] == "stop" for k in kids)
    assert all(k["parent"] == sweep["id"] for k in kids) and sweep["parent"] is None
    page = client.get(f"/ui/jobs/{sweep['id']}").get_data(as_text=True)
    assert 'id="children-section"' in page and 'id="children-body"' in page
    shown = client.get(f"/api/v1/jobs/{sweep['id']}", headers=auth(alice)).get_json()
    assert shown["children"]["links"]["list"] == f"/api/v1/jobs?parent={sweep['id']}"
    bad = client.get("/api/v1/jobs?parent=nope", headers=auth(alice))
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["path"] == "parent"


def test_only_max_parallel_children_are_offered_and_the_sweep_is_never_placed(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    add_node(settings, 8)
    sweep = submit(client, alice)
    kids = [k["id"] for k in children(client, alice, sweep["id"])]
    pool, decided = plan_pass(settings)
    placed = [p.job_id for p in decided.placements]
    assert placed == kids[:2], "the first two children, in order; never the sweep"
    assert set(pool.held_back) == set(kids[2:])
    assert "at most 2 of its children at once" in decided.waiting[kids[2]].reason
    queue = client.get("/api/v1/pool", headers=auth(alice)).get_json()["queue"]
    assert sorted(j["id"] for j in queue) == sorted(kids), "the sweep waits for no device"
    # One child running, one finished: room for one more.
    move(settings, kids[0], S.QUEUED, S.SCHEDULED, S.RUNNING)
    move(settings, kids[1], S.QUEUED, S.SCHEDULED, S.RUNNING, S.SUCCEEDED)
    _, decided = plan_pass(settings)
    assert [p.job_id for p in decided.placements] == [kids[2]]


def test_the_sweep_runs_with_its_first_child_and_succeeds_if_one_child_did(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    sweep = submit(client, alice, {**SWEEP, "grid": {"train.seed": [0, 1]}, "stop": {}})
    first, second = (k["id"] for k in children(client, alice, sweep["id"]))
    assert advance(settings, sweep["id"]).state == "queued"
    move(settings, first, S.QUEUED, S.SCHEDULED, S.RUNNING)
    assert advance(settings, sweep["id"]).state == "running"
    move(settings, first, S.RUNNING, S.FAILED)
    assert advance(settings, sweep["id"]).state == "running"
    move(settings, second, S.QUEUED, S.SCHEDULED, S.RUNNING, S.SUCCEEDED)
    done = advance(settings, sweep["id"])
    assert done.state == "succeeded" and done.finished_at is not None
    assert done.progress is not None and done.progress["finished"] == 2
    with session_scope(settings.database_url) as session:
        assert unfinished_sweeps(session) == []
        reasons = session.scalars(
            select(JobEvent.reason).where(JobEvent.job_id == sweep["id"]).order_by(JobEvent.id)
        ).all()
    assert reasons == ["submitted", "child lr/0 started", "children ended: 1 failed, 1 succeeded"]


def test_a_sweep_none_of_whose_children_succeeded_fails_saying_so(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    sweep = submit(client, alice, {**SWEEP, "grid": {"train.seed": [0, 1]}, "stop": {}})
    first, second = (k["id"] for k in children(client, alice, sweep["id"]))
    move(settings, first, S.QUEUED, S.SCHEDULED, S.RUNNING, S.FAILED)
    move(settings, second, S.QUEUED, S.SCHEDULED, S.RUNNING, S.FAILED)
    done = advance(settings, sweep["id"])
    assert done.state == "failed" and done.error == "no child succeeded: 2 failed"


def test_halving_stops_the_worse_child_through_the_cancel_path(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    sweep = submit(client, alice, {**SWEEP, "grid": {"train.seed": [0, 1, 2]}})
    a, b, _queued = (k["id"] for k in children(client, alice, sweep["id"]))
    move(settings, a, S.QUEUED, S.SCHEDULED, S.RUNNING)
    move(settings, b, S.QUEUED, S.SCHEDULED, S.RUNNING)
    with session_scope(settings.database_url) as session:
        report_evaluation(session, a, 1, 20, {"high_quality": 0.62})
        report_evaluation(session, b, 1, 10, {"high_quality": 0.41})
    advance(settings, sweep["id"])  # b has not reached the rung: nobody is judged
    assert {k["state"] for k in children(client, alice, sweep["id"])[:2]} == {"running"}
    with session_scope(settings.database_url) as session:
        report_evaluation(session, b, 1, 20, {"high_quality": 0.41})
    judged = advance(settings, sweep["id"])
    assert judged.progress is not None
    assert judged.progress["rungs"] == {"20": {a: 0.62, b: 0.41}}
    shown = {k["id"]: k for k in children(client, alice, sweep["id"])}
    assert shown[a]["state"] == "running"
    assert shown[b]["state"] == "cancelling"
    reason = f"stopped by sweep {sweep['id']} at rung 20: high_quality 0.41, below the kept half"
    assert shown[b]["error"].startswith(reason)
    events = client.get(f"/api/v1/jobs/{b}/events", headers=auth(alice)).get_json()["events"]
    assert events[-1]["to"] == "cancelling" and events[-1]["reason"].startswith(reason)
    # The worker stops it and it ends cancelled; the sweep goes on with its others.
    move(settings, b, S.CANCELLING, S.CANCELLED)
    assert advance(settings, sweep["id"]).state == "running"


def test_cancelling_a_sweep_cancels_its_unfinished_children(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    sweep = submit(client, alice)
    kids = [k["id"] for k in children(client, alice, sweep["id"])]
    move(settings, kids[0], S.QUEUED, S.SCHEDULED, S.RUNNING)
    move(settings, kids[1], S.QUEUED, S.SCHEDULED, S.RUNNING, S.SUCCEEDED)
    advance(settings, sweep["id"])
    cancelled = client.post(f"/api/v1/jobs/{sweep['id']}/cancel", headers=auth(alice))
    assert cancelled.status_code == 202
    assert cancelled.get_json()["state"] == "cancelling"
    states = [k["state"] for k in children(client, alice, sweep["id"])]
    assert states == ["cancelling", "succeeded", *["cancelled"] * 4]
    assert advance(settings, sweep["id"]).state == "cancelling", "a child is still stopping"
    move(settings, kids[0], S.CANCELLING, S.CANCELLED)
    assert advance(settings, sweep["id"]).state == "cancelled"


def test_a_running_sweep_is_never_judged_silent(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    sweep = submit(client, alice)
    first = children(client, alice, sweep["id"])[0]["id"]
    move(settings, first, S.QUEUED, S.SCHEDULED, S.RUNNING)
    advance(settings, sweep["id"])
    with session_scope(settings.database_url) as session:
        moved = reconcile(session, lost_after_s=-1)  # every running job counts as silent
    assert first in moved and sweep["id"] not in moved


def test_each_pass_advances_a_bounded_number_of_sweeps_taking_turns(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    small = {**SWEEP, "grid": {"train.seed": [0]}, "stop": {}}
    sweeps = [submit(client, alice, small)["id"] for _ in range(3)]
    for sweep_id in sweeps:
        (child,) = children(client, alice, sweep_id)
        move(settings, child["id"], S.QUEUED, S.SCHEDULED, S.RUNNING)
    turns = SweepPass(settings, per_pass=2)
    assert turns.run() == 2
    states = [
        client.get(f"/api/v1/jobs/{i}", headers=auth(alice)).get_json()["state"] for i in sweeps
    ]
    assert sorted(states) == ["queued", "running", "running"]
    assert turns.run() == 2  # the third, then the first again
    states = [
        client.get(f"/api/v1/jobs/{i}", headers=auth(alice)).get_json()["state"] for i in sweeps
    ]
    assert states == ["running"] * 3
