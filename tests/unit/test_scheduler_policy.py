"""The placement policy on its own: order, gangs, fair share, quotas, lanes, backfill."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Any

from shared.pool.plan_values import NodeView, QueuedJob, RunningJob
from shared.pool.policy import never_fits, plan

T0 = datetime(2026, 11, 30, tzinfo=timezone.utc)
_ids = count()


def job(owner: str = "ann", devices: int = 1, **fields: Any) -> QueuedJob:
    n = next(_ids)
    fields.setdefault("created_at", T0 + timedelta(seconds=n))
    return QueuedJob(id=fields.pop("id", f"j{n}"), owner=owner, devices=devices, **fields)


def node(name: str, slots: int, free: tuple[int, ...] | None = None, **fields: Any) -> NodeView:
    fields.setdefault("kind", "cpu")
    return NodeView(
        name=name, total=slots, free=tuple(range(slots)) if free is None else free, **fields
    )


def test_a_gang_gets_all_its_devices_on_one_node_and_nothing_is_over_committed() -> None:
    jobs = [job(devices=2, id="two"), job(devices=1, id="one"), job(devices=2, id="late")]
    result = plan(jobs, [node("a", 2), node("b", 2)])
    placed = {p.job_id: p for p in result.placements}
    assert set(placed) == {"two", "one"}
    assert len(placed["two"].devices) == 2 and placed["one"].node != placed["two"].node
    used = [(p.node, d) for p in result.placements for d in p.devices]
    assert len(used) == len(set(used))
    assert result.waiting["late"].reason.startswith("waiting for 2 devices to free up")


def test_best_fit_keeps_the_big_hole_for_the_big_job() -> None:
    result = plan([job(id="small"), job(devices=2, id="big")], [node("a", 2), node("b", 1)])
    assert {p.job_id: p.node for p in result.placements} == {"small": "b", "big": "a"}


def test_priority_comes_first_then_age() -> None:
    jobs = [job(id="old"), job(id="urgent", priority=5), job(id="new")]
    result = plan(jobs, [node("a", 1)])
    assert [p.job_id for p in result.placements] == ["urgent"]
    assert result.waiting["old"].position == 1 and result.waiting["new"].position == 2
    assert result.waiting["new"].reason.endswith("; 1 job ahead")


def test_the_user_with_less_recent_usage_goes_first_though_they_came_later() -> None:
    jobs = [job("heavy", id=f"h{i}") for i in range(3)] + [
        job("light", id=f"l{i}") for i in range(3)
    ]
    result = plan(jobs, [node("a", 4)], usage={"heavy": 5000.0, "light": 10.0})
    assert [p.job_id for p in result.placements] == ["l0", "l1", "l2", "h0"]
    assert result.waiting["h1"].position == 1


def test_with_equal_usage_one_pass_alternates_between_users() -> None:
    jobs = [job("ann", id=f"a{i}") for i in range(3)] + [job("bob", id=f"b{i}") for i in range(3)]
    result = plan(jobs, [node("a", 4)])
    assert [p.job_id for p in result.placements] == ["a0", "b0", "a1", "b1"]


def test_devices_held_now_count_against_a_user_between_equal_usages() -> None:
    jobs = [job("ann", id="ann1"), job("bob", id="bob1")]
    result = plan(jobs, [node("a", 1)], held={"ann": 3})
    assert [p.job_id for p in result.placements] == ["bob1"]


def test_a_job_over_its_owners_quota_waits_with_the_reason_and_blocks_nobody() -> None:
    jobs = [job("ann", devices=2, id="big"), job("bob", id="other")]
    result = plan(jobs, [node("a", 4)], held={"ann": 3}, quotas={"ann": 4})
    assert [p.job_id for p in result.placements] == ["other"]
    assert result.waiting["big"].reason == "over your quota of 4 devices (holding 3)"


def test_sampling_jobs_have_a_short_lane_ahead_of_older_training_jobs() -> None:
    jobs = [job(devices=1, id="train"), job(devices=1, id="sample", kind="sample")]
    result = plan(jobs, [node("a", 1)])
    assert [p.job_id for p in result.placements] == ["sample"]


def test_backfill_never_takes_the_devices_a_waiting_larger_job_needs() -> None:
    # Node a has 1 of 2 free (a job runs there); the 2-device job waits for it. A 1-device job
    # behind it may use node b, but not a's free device.
    jobs = [job(devices=2, id="big"), job(id="small1"), job(id="small2")]
    result = plan(jobs, [node("a", 2, free=(1,)), node("b", 1)])
    assert [(p.job_id, p.node) for p in result.placements] == [("small1", "b")]
    assert result.waiting["small2"].reason == "waiting for 1 device to free up; 1 job ahead"


def test_labels_and_device_kinds_select_nodes() -> None:
    nodes = [
        node("cpu", 4),
        node("gpu-v100", 2, kind="gpu", labels={"gpu": "v100"}),
        node("gpu-a100", 2, kind="gpu", labels={"gpu": "a100"}),
    ]
    jobs = [
        job(id="a100", device_type="cuda", labels={"gpu": "a100"}),
        job(id="cuda", device_type="cuda", devices=2),
        job(id="cpu", device_type="cpu"),
    ]
    placed = {p.job_id: p.node for p in plan(jobs, nodes).placements}
    assert placed == {"a100": "gpu-a100", "cuda": "gpu-v100", "cpu": "cpu"}


def test_draining_nodes_take_no_new_jobs() -> None:
    result = plan([job(id="j")], [node("a", 1, accepting=False)])
    assert result.placements == []
    assert result.waiting["j"].reason == "every node with 1 device is draining or down"


def test_a_job_that_can_never_fit_is_named_so() -> None:
    nodes = [node("a", 2), node("g", 1, kind="gpu", labels={"gpu": "v100"})]
    assert never_fits(job(devices=4), nodes) == "asks for 4 devices; the largest fitting node has 2"
    assert never_fits(job(device_type="cuda", labels={"gpu": "a100"}), nodes) == (
        "no node in the pool offers 1 device (gpu) with gpu=a100"
    )
    assert never_fits(job(devices=2), nodes) is None


def test_a_higher_priority_job_preempts_the_lowest_priority_preemptible_jobs_it_needs() -> None:
    running = [
        RunningJob("keep", node="a", devices=1, priority=0),  # not preemptible
        RunningJob("low", node="a", devices=1, priority=-1, preemptible=True),
        RunningJob("mid", node="b", devices=2, priority=1, preemptible=True),
    ]
    nodes = [node("a", 2, free=()), node("b", 2, free=())]
    result = plan([job(id="urgent", priority=5)], nodes, running=running)
    assert [p.job_id for p in result.preemptions] == ["low"]
    assert result.preemptions[0].reason == "preempted for job urgent (priority 5)"
    assert result.waiting["urgent"].reason == "waiting for 1 device: 1 preemptible job stopping"


def test_nothing_is_preempted_for_an_equal_priority_or_twice_for_the_same_job() -> None:
    running = [RunningJob("victim", node="a", devices=1, priority=0, preemptible=True)]
    nodes = [node("a", 1, free=())]
    assert plan([job(id="peer")], nodes, running=running).preemptions == []
    stopping = [RunningJob("victim", node="a", devices=1, preemptible=True, stopping=True)]
    result = plan(
        [job(id="first", priority=2), job(id="second", priority=2)], nodes, running=stopping
    )
    assert result.preemptions == [], "a victim already stopping is not asked again"
    assert result.waiting["first"].reason == "waiting for 1 device: 1 preemptible job stopping"
    assert result.waiting["second"].reason.startswith("waiting for 1 device to free up")


def test_a_multi_node_gang_takes_its_share_on_distinct_nodes_all_at_once() -> None:
    gang = job(devices=4, nodes=2, id="gang")
    result = plan([gang], [node("a", 2), node("b", 2), node("c", 4)])
    (placement,) = result.placements
    assert placement.parts == (("a", (0, 1)), ("b", (0, 1))), "best fit keeps node c whole"


def test_a_gang_that_finds_too_few_nodes_waits_and_holds_what_it_will_use() -> None:
    jobs = [job(devices=4, nodes=2, id="gang"), job(id="small")]
    result = plan(jobs, [node("a", 2), node("b", 2, free=(1,)), node("c", 1)])
    assert [(p.job_id, p.node) for p in result.placements] == [("small", "c")]
    assert result.waiting["gang"].reason == "waiting for 4 devices on 2 nodes to free up"


def test_a_gang_no_set_of_nodes_could_hold_is_named_so() -> None:
    nodes = [node("a", 2), node("b", 1)]
    assert never_fits(job(devices=4, nodes=2), nodes) == (
        "asks for 4 devices on 2 nodes; 1 node(s) have 2 such devices"
    )
    assert never_fits(job(devices=2, nodes=2), nodes) is None


def test_a_shunned_node_is_placed_on_only_when_no_other_fits() -> None:
    busy = node("a-busy", 2, free=(1,), shunned=True)  # best fit, but it missed a claim
    idle = node("b-idle", 2)
    first = plan([job(devices=1)], [busy, idle])
    assert [p.parts for p in first.placements] == [(("b-idle", (0,)),)]
    only = plan([job(devices=1)], [busy, node("c-full", 1, free=())])
    assert [p.parts for p in only.placements] == [(("a-busy", (1,)),)], "shunned, not excluded"
