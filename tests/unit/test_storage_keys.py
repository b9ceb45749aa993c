"""Artifact keys: one fixed layout, built only from our ids and integer steps."""

from __future__ import annotations

import pytest

from shared.storage import keys

JOB_ID = "0123456789abcdef0123456789abcdef"


def test_checkpoint_key_follows_the_documented_layout() -> None:
    key = keys.artifact_key(JOB_ID, keys.checkpoint_name(500))
    assert key == f"jobs/{JOB_ID}/checkpoints/step-000500.pt"


def test_sample_latent_metric_and_log_keys_follow_the_documented_layout() -> None:
    assert keys.artifact_key(JOB_ID, keys.samples_name(500)) == (
        f"jobs/{JOB_ID}/samples/step-000500.png"
    )
    assert keys.artifact_key(JOB_ID, keys.latents_name(500)) == (
        f"jobs/{JOB_ID}/samples/step-000500-latents.npy"
    )
    assert keys.artifact_key(JOB_ID, keys.METRICS_NAME) == f"jobs/{JOB_ID}/metrics.jsonl"
    assert keys.artifact_key(JOB_ID, keys.LOG_NAME) == f"jobs/{JOB_ID}/log.txt"


def test_step_keys_sort_in_step_order() -> None:
    steps = [0, 5, 500, 1000, 999_999]
    names = [keys.checkpoint_name(step) for step in steps]
    assert sorted(names) == names


def test_steps_beyond_the_padding_still_give_unique_keys() -> None:
    assert keys.step_name(1_234_567) == "step-1234567"


def test_job_prefix_is_the_start_of_every_artifact_key() -> None:
    assert keys.artifact_key(JOB_ID, keys.LOG_NAME).startswith(keys.job_prefix(JOB_ID))


@pytest.mark.parametrize(
    "job_id",
    [
        "",
        "../../etc",
        JOB_ID.upper(),
        JOB_ID[:-1],
        JOB_ID + "0",
        "0123456789abcdef-123456789abcdef",
        f"{JOB_ID}\n",
    ],
)
def test_rejects_anything_but_a_32_hex_job_id(job_id: str) -> None:
    with pytest.raises(keys.KeyError_):
        keys.job_prefix(job_id)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../log.txt",
        "samples/../../x",
        "/etc/passwd",
        "a/b/c.png",
        ".hidden",
        "Log.txt",
        "log.txt/",
        "log..txt",
        "log.txt\n",
    ],
)
def test_rejects_artifact_names_outside_the_layout(name: str) -> None:
    with pytest.raises(keys.KeyError_):
        keys.artifact_key(JOB_ID, name)


def test_rejects_negative_steps() -> None:
    with pytest.raises(keys.KeyError_):
        keys.step_name(-1)


def test_dataset_keys_take_our_id_and_a_checked_file_name() -> None:
    assert keys.dataset_key(JOB_ID, "faces.tar.gz") == f"uploads/{JOB_ID}/faces.tar.gz"
    for name in ("../x.zip", "a/b.zip", ".hidden.zip", "", "a b.zip", "x" * 200):
        with pytest.raises(keys.KeyError_):
            keys.dataset_key(JOB_ID, name)
    with pytest.raises(keys.KeyError_):
        keys.dataset_prefix("../jobs")
