"""The `resources` part of a job spec: what a job needs from the pool. The scheduler places a
job on nodes that have it all (shared/pool/policy.py).

Its own module because every kind of job asks for resources the same way: training, sampling
and evaluation specs each hold one.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from shared.specs.data import StrictModel

# The devices one node gives one job: the most GPUs a node has in practice.
MAX_DEVICES_PER_NODE = 8
# The nodes one job may span; a gang of 8 full 8-GPU nodes is beyond any lab pool's share.
MAX_NODES = 8


LabelText = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:/-]+$")]


class ResourceSpec(StrictModel):
    """What a job needs from the pool; the scheduler places it on one node that has it all."""

    # Devices in all; with `nodes` > 1 they are split evenly, one share per node.
    devices: Annotated[StrictInt, Field(ge=1, le=MAX_DEVICES_PER_NODE * MAX_NODES)] = 1
    # Nodes the job spans: its ranks on each node join one torch.distributed group whose
    # rendezvous is on the first node (gloo on CPU, NCCL on GPU).
    nodes: Annotated[StrictInt, Field(ge=1, le=MAX_NODES)] = 1
    # auto: CUDA when the node has it, else CPU. cuda needs a GPU node, cpu a CPU-slot node.
    device_type: Literal["auto", "cpu", "cuda"] = "auto"
    # Node labels the job needs, e.g. {"gpu": "a100"}: only nodes with all of them qualify.
    labels: Annotated[dict[LabelText, LabelText], Field(max_length=16)] = {}
    # A preemptible job yields its devices to a higher-priority job that cannot start: it
    # checkpoints, becomes `preempted`, and resumes from that checkpoint when devices free up.
    preemptible: StrictBool = False
    # Address space each of the job's processes may map, in GiB (RLIMIT_AS): a runaway
    # allocation fails in the job instead of swapping its node. For CPU jobs: CUDA maps
    # terabytes of address space up front, so a GPU job leaves it unset.
    address_space_gib: Annotated[StrictInt | None, Field(ge=1, le=4096)] = None

    @model_validator(mode="after")
    def _devices_split_over_nodes(self) -> ResourceSpec:
        if self.devices % self.nodes:
            raise ValueError(
                f"devices ({self.devices}) must split evenly over nodes ({self.nodes})"
            )
        if self.address_space_gib is not None and self.device_type == "cuda":
            raise ValueError("address_space_gib bounds CPU jobs: CUDA maps far more up front")
        if self.devices // self.nodes > MAX_DEVICES_PER_NODE:
            raise ValueError(
                f"at most {MAX_DEVICES_PER_NODE} devices per node; use more nodes for "
                f"{self.devices} devices"
            )
        return self

    @property
    def devices_per_node(self) -> int:
        return self.devices // self.nodes
