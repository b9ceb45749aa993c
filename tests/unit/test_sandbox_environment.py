"""A job process's environment is an allow-list: the worker's secrets never reach it, while a
real child started with it still imports ganforge (worker/sandbox/environment.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from worker.sandbox.account import prepare_work_folder
from worker.sandbox.environment import SecretInEnvironmentError, is_denied, job_environment

# What a worker's environment holds in a deployment: secrets, its own paths, operator knobs.
WORKER_LIKE = {
    "GANFORGE_DATABASE_URL": "postgresql+psycopg://ganforge:db-pass-leak01@db/ganforge",
    "GANFORGE_BROKER_URL": "redis://:broker-pass-leak02@redis:6379/0",
    "GANFORGE_STORAGE_URL": "s3://lab/ganforge",
    "GANFORGE_HOME": "/srv/ganforge",
    "GANFORGE_TOKEN": "gf_token-leak03",
    "GANFORGE_METRICS_TOKEN": "metrics-leak04",
    "AWS_ACCESS_KEY_ID": "AKIA-leak05",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-leak06",
    "HF_TOKEN": "hf-leak07",
    "SENTRY_DSN_URL": "https://key-leak08:secret-leak09@sentry.lab/1",
    "SMTP_PASSWORD": "smtp-leak10",
    "SSH_AUTH_SOCK": "/tmp/ssh-agent-leak11",
    "HOME": "/root",
    "PATH": "/root/bin-leak12:/usr/bin",
    "PYTHONPATH": "/root/site-leak13",
    "LD_PRELOAD": "/root/hook-leak14.so",
    "CUDA_VISIBLE_DEVICES": "2,3",
    "NCCL_SOCKET_IFNAME": "eth1",
    "NCCL_IB_PKEY": "0x8001",
    "NCCL_SECRET_THING": "nccl-leak15",
    "GLOO_SOCKET_IFNAME": "eth1",
    "OMP_NUM_THREADS": "4",
}


def test_a_worker_like_environment_leaves_only_the_allow_list(tmp_path: Path) -> None:
    env = job_environment(
        {"GANFORGE_AGENT_ADDRESS": "127.0.0.1:4000"}, tmp_path, source=WORKER_LIKE
    )
    assert "leak" not in json.dumps(env), env
    passed = {"CUDA_VISIBLE_DEVICES", "NCCL_SOCKET_IFNAME", "NCCL_IB_PKEY", "GLOO_SOCKET_IFNAME"}
    assert {name: env[name] for name in passed} == {name: WORKER_LIKE[name] for name in passed}
    assert env["OMP_NUM_THREADS"] == "4" and env["GANFORGE_AGENT_ADDRESS"] == "127.0.0.1:4000"
    assert env["HOME"] == str(tmp_path) and env["TMPDIR"].startswith(str(tmp_path))
    assert env["LC_ALL"] == "C.UTF-8" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert not {"GANFORGE_STORAGE_URL", "GANFORGE_HOME", "SSH_AUTH_SOCK"} & set(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GANFORGE_DATABASE_URL", "sqlite:///x.db"),
        ("AWS_REGION", "eu-west-1"),
        ("RUN_TOKEN", "t"),
        ("api_key", "k"),
        ("RESULTS_URL", "https://user:pass@store.lab/"),
        ("HOME", "/root"),
        ("PYTHONPATH", "/elsewhere"),
    ],
)
def test_extra_naming_a_secret_or_a_fixed_variable_is_a_programming_error(
    tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(SecretInEnvironmentError, match=name):
        job_environment({name: value}, tmp_path, source={})


def test_a_url_without_credentials_is_not_a_secret() -> None:
    assert not is_denied("GANFORGE_AGENT_URL", "http://10.0.0.2:4000/agent")
    assert is_denied("GANFORGE_AGENT_URL", "http://agent:pw@10.0.0.2:4000/")


@pytest.mark.processes  # starts an interpreter: outside `make test-fast`
def test_a_child_started_with_it_imports_the_package_and_sees_no_secret(tmp_path: Path) -> None:
    work = tmp_path / "work"
    prepare_work_folder(work, None)
    env = job_environment({}, work)
    probe = (
        "import json, os, tempfile, worker, worker.launcher;"
        "print(json.dumps([worker.__file__, tempfile.gettempdir(), sorted(os.environ)]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=work, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    imported, temp, names = json.loads(done.stdout)
    assert Path(imported).parent == Path(__file__).resolve().parents[2] / "worker"
    assert temp == str(work / "tmp")
    assert not [name for name in names if is_denied(name, "")], names
