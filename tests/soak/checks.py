"""What the soak checks once the queue has drained, each a function that returns what is
wrong (empty: nothing): event paths against the state machine, device reservations, processes
and work folders a job left behind, and the services' resident memory."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path

from sqlalchemy import select

from cli.embedded import ServiceProcesses
from shared.db import session_scope
from shared.models import JobEvent, Reservation
from shared.states import TERMINAL, InvalidTransitionError, JobState, check_transition
from tests import procfs

Edge = tuple[str | None, str]


def event_paths(database_url: str, job_ids: Iterable[str]) -> dict[str, list[Edge]]:
    """Each job's state changes (from, to), in the order they were written."""
    paths: dict[str, list[Edge]] = defaultdict(list)
    with session_scope(database_url) as session:
        rows = session.execute(
            select(JobEvent.job_id, JobEvent.from_state, JobEvent.to_state)
            .where(JobEvent.job_id.in_(list(job_ids)))
            .order_by(JobEvent.id)
        )
        for job_id, from_state, to_state in rows:
            paths[job_id].append((from_state, to_state))
    return dict(paths)


def path_problems(path: list[Edge], final_state: str) -> list[str]:
    """What is wrong with one job's path: it starts at creation (None -> queued), each change
    leaves the state the previous one reached along an edge of the state machine, exactly one
    change reaches a final state, and it is the last one, the job's state now."""
    if not path or path[0] != (None, JobState.QUEUED.value):
        return [f"does not start with creation: {path[:1]}"]
    problems = []
    for (_, reached), (source, target) in pairwise(path):
        if source != reached:
            problems.append(f"{source} -> {target} after reaching {reached}")
            continue
        try:
            check_transition(JobState(source), JobState(target))
        except InvalidTransitionError as error:
            problems.append(str(error))
    finals = [target for _, target in path if JobState(target) in TERMINAL]
    if len(finals) != 1:
        problems.append(f"{len(finals)} final events: {finals}")
    if path[-1][1] != final_state:
        problems.append(f"ends {path[-1][1]} but the job is {final_state}")
    return problems


def held_reservations(database_url: str) -> list[tuple[str, int, str, int]]:
    """Every reservation (node, device, job, attempt) still in the database."""
    with session_scope(database_url) as session:
        rows = session.execute(
            select(
                Reservation.node_name,
                Reservation.device_index,
                Reservation.job_id,
                Reservation.attempt,
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def leftover_processes(processes: ServiceProcesses, home: Path) -> list[str]:
    """Processes of this service's jobs still alive: a launcher of ours (its work folder is
    under `home`), or anything started with our GANFORGE_HOME that is no longer below a
    service process (an orphaned rank). A helper a worker keeps as its own child is not a
    leftover."""
    table = procfs.snapshot()
    leaders = {process.pid for process in processes.processes.values()}
    attached = procfs.descendants(table, leaders) | leaders
    ours = f"GANFORGE_HOME={home}\0".encode()
    found = []
    for pid, process in table.items():
        if process.pgid in leaders:
            continue  # a service process itself (gunicorn worker, Celery pool process)
        launcher = b"worker.launcher" in process.cmdline and str(home).encode() in process.cmdline
        orphan = pid not in attached and ours in procfs.environment(pid)
        if launcher or orphan:
            command = process.cmdline.replace(b"\0", b" ")[:200].decode(errors="replace")
            found.append(f"{pid}: {command}")
    return found


def leftover_work_folders(home: Path, nodes: Iterable[str], job_ids: Iterable[str]) -> list[str]:
    """Work folders of these jobs still on a node: they are named <first 8 of the id>-<attempt>-
    (worker/supervisor.py) under the node's work root (worker/node.py)."""
    prefixes = tuple(f"{job_id[:8]}-" for job_id in job_ids)
    left = []
    for node in nodes:
        root = home / "work" / node
        if root.exists():
            left += [str(path) for path in root.iterdir() if path.name.startswith(prefixes)]
    return left


def resident_mib(processes: ServiceProcesses) -> dict[str, float]:
    """Resident memory (MiB) of each service process with the helpers it keeps (see
    resident_by_process)."""
    return {name: sum(parts.values()) for name, parts in resident_by_process(processes).items()}


def resident_by_process(processes: ServiceProcesses) -> dict[str, dict[str, float]]:
    """Resident memory (MiB) of each service process's members, "<command> [<pid>]": its
    process group (gunicorn's master and workers; Celery's main process and pool) and any
    other process below it that is not a job's (a warm sampler in its own session, the fork
    server). Jobs' launchers and ranks come and go and are left out: their memory is the
    job's, not the service's. By member, so that growth names the process that grew."""
    table = procfs.snapshot()
    job_groups = {p.pgid for p in table.values() if b"worker.launcher" in p.cmdline}
    sizes = {}
    for name, process in processes.processes.items():
        leader = process.pid
        members = procfs.descendants(table, [leader]) | {
            pid for pid, p in table.items() if p.pgid == leader
        }
        kept = {pid: table[pid] for pid in members if table[pid].pgid not in job_groups}
        sizes[name] = {
            f"{_command(p.cmdline)} [{pid}]": p.rss_bytes / 2**20 for pid, p in kept.items()
        }
    return sizes


def _command(cmdline: bytes) -> str:
    return cmdline.replace(b"\0", b" ").strip()[:60].decode(errors="replace")
