"""`make gpu-check` on a machine without CUDA: it reports the devices the worker would register
and says that nothing else ran, rather than failing (CI has no GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench import gpu_check


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_without_cuda_only_the_devices_are_reported(tmp_path: Path) -> None:
    results = gpu_check.main(["--json", str(tmp_path / "gpu.json")])
    assert results["devices"]["cuda"] is False and results["devices"]["gpus"] == []
    assert results["devices"]["worker_sees"], "CPU slots at least"
    assert all(d["kind"] == "cpu" for d in results["devices"]["worker_sees"])
    assert "no CUDA device" in results["skipped"] and "throughput" not in results
    assert json.loads((tmp_path / "gpu.json").read_text()) == results
