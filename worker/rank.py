"""One rank of a job attempt: set up the device and process group, run the engine, report.

Started by the launcher with `spawn`, inside the attempt's sandbox: everything it reads of
the service and hands back goes through its node agent (worker/channel/link.py). A failure
goes to the agent (one line a person can act on, and whether the machinery failed) and to the
job's log before the process exits non-zero; its traceback, which names the server's files,
goes to the rank's stderr only, which the supervisor copies into the worker's own log.
"""

from __future__ import annotations

import traceback
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from shared.datafiles.errors import DataFileError
from shared.specs import EvaluateSpec, ScriptSpec, TrainSpec, parse_spec
from worker.channel.link import AgentLink, JobInputError
from worker.channel.ticket import JobTicket
from worker.gan.checkpoint import checkpoint_spec
from worker.gan.data import resolve_data
from worker.gan.distributed import backend_for, leave_without_finalizers, process_group
from worker.gan.errors import GanError
from worker.gan.evaluation import evaluate_checkpoint, needs_data
from worker.gan.train import train
from worker.process_titles import title_rank
from worker.rank_inputs import job_data, load_checkpoint_of
from worker.reporter import JobReporter
from worker.sampling import run_sampling


@dataclass(frozen=True)
class RankArgs:
    world_size: int
    port: int
    threads: int
    # This node's first global rank, and where rank 0's process group store listens.
    rank_offset: int = 0
    master_addr: str = "127.0.0.1"


def pick_device(device_type: str, rank: int) -> torch.device:
    wants_cuda = device_type == "cuda" or (device_type == "auto" and torch.cuda.is_available())
    if wants_cuda:
        if not torch.cuda.is_available():
            raise JobInputError("spec.resources.device_type: cuda asked for, none on this node")
        return torch.device("cuda", rank)
    return torch.device("cpu")


def rank_main(local_rank: int, args: RankArgs) -> None:
    """One rank: `local_rank` on this node, `args.rank_offset + local_rank` in the job."""
    rank = args.rank_offset + local_rank
    torch.set_num_threads(args.threads)
    link = AgentLink.from_environment()
    ticket = JobTicket.from_json(link.call("ticket")[0]["ticket"])
    title_rank(ticket.job_id, ticket.attempt, rank, args.world_size)
    reporter = JobReporter(link, ticket, rank)
    try:
        register_bundles(ticket)
        spec = parse_spec(ticket.kind, ticket.spec)
        device = pick_device(spec.resources.device_type, local_rank)
        if isinstance(spec, TrainSpec):
            status = run_training(link, ticket, args, rank, spec, device, reporter)
        elif isinstance(spec, EvaluateSpec):
            status = run_evaluation(link, ticket, spec, device, reporter)
        elif isinstance(spec, ScriptSpec):
            from worker.script_jobs import run_script

            status = run_script(
                link,
                ticket,
                spec,
                rank=rank,
                local_rank=local_rank,
                world_size=args.world_size,
                port=args.port,
                master_addr=args.master_addr,
                device=device,
                reporter=reporter,
            )
        else:
            status = run_sampling(link, spec, device, reporter)
        if local_rank == 0:  # each node's supervisor reads its own node's result
            status, _, error = status.partition(": ")  # "failed: <reason>" carries its reason
            link.call("result", status=status, error=error)
    except BaseException as exc:
        message = failure_message(exc)
        with suppress(Exception):  # an agent that is gone hears nothing; the exit tells
            link.call("failure", rank=rank, message=message, lost=is_infrastructure_fault(exc))
        reporter.log(f"rank {rank} failed: {message}")
        traceback.print_exc()  # for the worker's log, not the user's
        raise
    finally:
        reporter.flush()
    leave_without_finalizers()


def register_bundles(ticket: JobTicket) -> None:
    """Make the job's code bundles importable by the engine (a custom model's networks)."""
    if ticket.bundles:
        from worker.gan.plugins import register_bundle

        for code, folder in ticket.bundles.items():
            register_bundle(code, Path(folder))


# Errors written for the job's owner: the message names the field or the data file and what
# is wrong (spec.data.path: member 'x.png' of faces points outside the data roots ...).
USER_FAULTS = (JobInputError, GanError, DataFileError)


def failure_message(error: BaseException) -> str:
    """What the job's log and error say of a failure: a user fault's own message; anything
    else with its type, and an OS error without the server file it names."""
    if isinstance(error, USER_FAULTS):
        return str(error)
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        return f"{type(error).__name__}: {error.strerror}"
    return f"{type(error).__name__}: {error}"


def is_infrastructure_fault(error: BaseException) -> bool:
    """Faults of the machinery, not of the job: a peer rank or node gone (collectives fail),
    the agent unable to reach storage or the database past its retries (AgentUnavailableError
    is a ConnectionError), a network error. Such an attempt is requeued; anything else (bad
    data, a bad spec, a NaN loss) fails the job with its reason."""
    return isinstance(error, (dist.DistError, ConnectionError, TimeoutError))


def run_training(
    link: AgentLink,
    ticket: JobTicket,
    args: RankArgs,
    rank: int,
    spec: TrainSpec,
    device: torch.device,
    reporter: JobReporter,
) -> str:
    with job_data(spec.data, link, ticket.roots) as data_path:
        # Networks are built from the spec: an .npz or archive's sample shape is read now.
        spec = resolve_data(spec, data_path)
        resume = load_checkpoint_of(link, ticket.job_id, None, device)
        if resume is not None:
            reporter.log(f"resuming from the checkpoint of step {resume['step']}")
        group = process_group(
            rank, args.world_size, args.port, backend_for(device), args.master_addr
        )
        with group:
            result = train(
                spec,
                hooks=reporter,
                rank=rank,
                world_size=args.world_size,
                device=device,
                data_path=data_path,
                resume=resume,
            )
    if result.stopped_early and reporter.stop_reason is not None:
        return f"failed: stopped at step {result.step}: {reporter.stop_reason}"
    return "cancelled" if result.stopped_early else "succeeded"


def run_evaluation(
    link: AgentLink,
    ticket: JobTicket,
    spec: EvaluateSpec,
    device: torch.device,
    reporter: JobReporter,
) -> str:
    """Score a training job's checkpoint: the figures, warnings and picture land on this
    job as a training job's evaluations land on it."""
    checkpoint = load_checkpoint_of(link, spec.job_id, spec.step, device)
    if checkpoint is None:
        at = "any step" if spec.step is None else f"step {spec.step}"
        raise JobInputError(f"spec.job_id: job {spec.job_id} has no checkpoint at {at}")
    trained = checkpoint_spec(checkpoint)
    reporter.log(f"evaluating step {checkpoint['step']} of {spec.job_id} ({trained.data.source})")
    if not needs_data(trained):
        evaluate_checkpoint(checkpoint, reporter, device, None)
        return "succeeded"
    with job_data(trained.data, link, ticket.roots) as data_path:
        evaluate_checkpoint(checkpoint, reporter, device, data_path)
    return "succeeded"
