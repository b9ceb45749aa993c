"""A script job's rank: the researcher's own loop from their bundle, called with the runtime
(worker/runtime.py) set up for it, inside the same process group, sandbox and agent as a
built-in training rank. How it ends: `succeeded`, or `cancelled` when the loop returned after
`should_stop()` said so (a cancel, or a preemption, which the task then requeues)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from shared.specs import ScriptSpec
from worker import runtime
from worker.channel.link import AgentLink
from worker.channel.ticket import JobTicket
from worker.gan.distributed import backend_for, process_group
from worker.gan.errors import BundleError
from worker.gan.plugins import describe_error, load_attribute
from worker.reporter import JobReporter


def run_script(
    link: AgentLink,
    ticket: JobTicket,
    spec: ScriptSpec,
    *,
    rank: int,
    local_rank: int,
    world_size: int,
    port: int,
    master_addr: str,
    device: torch.device,
    reporter: JobReporter,
) -> str:
    entry = load_attribute(spec.code, spec.entrypoint, "spec.entrypoint", "function")
    if not callable(entry):
        raise BundleError(f"spec.entrypoint: {spec.entrypoint} is not a function")
    run = runtime.ScriptRun(
        link=link,
        ticket=ticket,
        reporter=reporter,
        rank=rank,
        local_rank=local_rank,
        world_size=world_size,
        device=device,
        total_steps=spec.steps,
    )
    runtime.start(run)
    if rank == 0:
        reporter.log(f"running {spec.entrypoint} on {world_size} rank(s)")
    with process_group(rank, world_size, port, backend_for(device), master_addr):
        try:
            entry(dict(spec.args))
        except (ConnectionError, TimeoutError, dist.DistError):
            raise  # the machinery's (the agent, a peer rank): the attempt is lost, retried
        except Exception as exc:  # the loop's own error: the job fails, naming file and line
            raise BundleError(f"spec.entrypoint: {describe_error(exc, spec.code)}") from None
    return "cancelled" if run.stopped else "succeeded"
