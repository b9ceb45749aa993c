"""`make gpu-check` on a machine without CUDA: it reports the devices the worker would register
and says that nothing else ran, rather than failing (CI has no GPU); and its CPU half
(`--cpu-smoke`) runs every section's code, so the script is known to work the day a GPU is
lent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench import gpu_check
from bench.gpu_throughput import MODEL_CASES, PRECISIONS, with_ratios

without_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")


@without_cuda
def test_without_cuda_only_the_devices_are_reported(tmp_path: Path) -> None:
    results = gpu_check.main(["--json", str(tmp_path / "gpu.json")])
    assert results["devices"]["cuda"] is False and results["devices"]["gpus"] == []
    assert results["devices"]["worker_sees"], "CPU slots at least"
    assert all(d["kind"] == "cpu" for d in results["devices"]["worker_sees"])
    assert "no CUDA device" in results["skipped"] and "throughput" not in results
    assert json.loads((tmp_path / "gpu.json").read_text()) == results


@without_cuda
@pytest.mark.slow  # a dozen tiny training runs and a 2-rank one: in `make test`
@pytest.mark.processes
def test_the_cpu_smoke_runs_every_section_and_says_what_each_run_ran_as(tmp_path: Path) -> None:
    results = gpu_check.main(["--cpu-smoke", "--json", str(tmp_path / "gpu.json")])
    assert json.loads((tmp_path / "gpu.json").read_text()) == results
    timed = {name: figures for name, figures in results["throughput"].items()}
    assert [case.name for case in MODEL_CASES] == list(timed)
    available = [name for name, figures in timed.items() if "skipped" not in figures]
    assert {"dcgan-64", "dcgan-128"} <= set(available)
    for name, figures in timed.items():
        if name not in available:  # stylegan2 until that family lands
            assert figures["skipped"].startswith("not available: model.family: must be one of")
            continue
        for precision in PRECISIONS:
            run = figures[precision]
            # On a CPU mixed precision falls back to fp32, as the engine logs; no loss scaling.
            assert run["ran_as"] == "fp32" and run["loss_scaling"] is False
            assert run["memory_format"] == "contiguous"
            assert run["images_per_second"] > 0 and run["steps_timed"] == 2
        assert figures["goal"]["best_mixed_over_fp32"] is None and not figures["goal"]["met"]
    assert set(results["warm_sampling"]) == set(available)
    assert all(s["median_ms"] > 0 for s in results["warm_sampling"].values())
    assert results["two_ranks"]["backend"] == "gloo" and results["two_ranks"]["world_size"] == 2


def test_the_goal_is_met_only_by_a_mixed_precision_that_really_ran_mixed() -> None:
    def run(rate: float, ran_as: str) -> dict[str, object]:
        return {"images_per_second": rate, "ran_as": ran_as}

    fast_bf16 = with_ratios(
        {"fp32": run(100.0, "fp32"), "bf16": run(160.0, "bf16"), "fp16": run(140.0, "fp16")}
    )
    assert fast_bf16["bf16"]["over_fp32"] == 1.6 and fast_bf16["fp16"]["over_fp32"] == 1.4
    assert fast_bf16["goal"] == {
        "mixed_over_fp32_at_least": 1.5,
        "best_mixed_over_fp32": 1.6,
        "met": True,
    }
    fell_back = with_ratios({"fp32": run(100.0, "fp32"), "bf16": run(160.0, "fp32")})
    assert "over_fp32" not in fell_back["bf16"] and fell_back["goal"]["met"] is False
