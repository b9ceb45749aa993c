"""The README's first command, minus the install: the embedded service needs no server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.gan.distributed import find_free_port

pytestmark = pytest.mark.e2e


def test_demo_runs_a_job_on_sqlite_local_folder_and_file_broker(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GANFORGE_", "AWS_"))},
        "GANFORGE_HOME": str(home),
        "GANFORGE_API_URL": f"http://127.0.0.1:{find_free_port()}",
        "GANFORGE_TORCH_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli", "demo", "--steps", "60"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout
    (job_folder,) = (home / "artifacts" / "jobs").iterdir()
    assert (job_folder / "checkpoints" / "step-000060.pt").stat().st_size > 0
    assert (job_folder / "samples" / "step-000060.png").read_bytes()[:4] == b"\x89PNG"
    # The run's own verdict and the path of its picture.
    assert "quality at step 60: " in result.stdout and " modes, " in result.stdout
    assert (job_folder / "evaluations" / "step-000060.png").read_bytes()[:4] == b"\x89PNG"
    assert str(job_folder) in result.stdout.replace("\n", "")
    assert (home / "token").read_text().startswith("gf_")
    assert (home / "ganforge.db").exists()
