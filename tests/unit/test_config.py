import dataclasses
from pathlib import Path

import pytest

from shared.config import DEFAULT_API_URL, ClientConfig, ConfigError, Settings


def test_embedded_defaults_need_no_service(tmp_path: Path) -> None:
    settings = Settings.from_env({"GANFORGE_HOME": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'ganforge.db'}"
    assert settings.broker_url == "filesystem://"
    assert settings.storage_url == (tmp_path / "artifacts").as_uri()
    assert settings.is_embedded_broker


def test_deployment_is_only_environment_variables() -> None:
    settings = Settings.from_env(
        {
            "GANFORGE_DATABASE_URL": "postgresql+psycopg://u@db/ganforge",
            "GANFORGE_BROKER_URL": "redis://redis:6379/0",
            "GANFORGE_STORAGE_URL": "s3://lab-bucket/ganforge",
            "AWS_ENDPOINT_URL": "http://minio:9000",
            "GANFORGE_TORCH_THREADS": "4",
        }
    )
    assert settings.database_url.startswith("postgresql")
    assert not settings.is_embedded_broker
    assert settings.s3_endpoint_url == "http://minio:9000"
    assert settings.torch_threads == 4


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("GANFORGE_STORAGE_URL", "ftp://x", "GANFORGE_STORAGE_URL"),
        ("GANFORGE_STORAGE_URL", "s3://", "bucket"),
        ("GANFORGE_DATABASE_URL", "not a url", "GANFORGE_DATABASE_URL"),
        ("GANFORGE_TORCH_THREADS", "many", "GANFORGE_TORCH_THREADS must be an integer"),
        ("GANFORGE_TORCH_THREADS", "0", "at least 1"),
        ("GANFORGE_CANCEL_GRACE_S", "-1", "positive"),
        ("GANFORGE_STREAMS_PER_PROCESS", "8", "below GANFORGE_API_THREADS \\(8\\)"),
        ("GANFORGE_WEBHOOK_PRIVATE_ADDRESSES", "10.0.0.1/8", "GANFORGE_WEBHOOK_PRIVATE_ADDRESSES"),
        ("GANFORGE_WEBHOOK_PRIVATE_ADDRESSES", "intranet", "networks like 10.0.0.0/8"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Settings.from_env({name: value})


def test_streams_take_half_an_api_process_threads_unless_told() -> None:
    assert Settings.from_env({}).streams_per_process == Settings.from_env({}).api_threads // 2
    assert Settings.from_env({"GANFORGE_API_THREADS": "12"}).streams_per_process == 6
    one = Settings.from_env({"GANFORGE_API_THREADS": "1"})
    assert one.streams_per_process == 0, "one thread: it answers requests, clients poll"


def test_settings_survive_a_trip_through_a_child_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"GANFORGE_HOME": str(tmp_path), "GANFORGE_QUEUE": "q1"})
    assert Settings.from_env(settings.to_env()) == settings


def test_the_cli_connects_by_flag_then_environment_then_config_file_then_embedded(
    tmp_path: Path,
) -> None:
    home = {"GANFORGE_HOME": str(tmp_path)}
    assert ClientConfig.resolve(environ=home) == ClientConfig(DEFAULT_API_URL, None)
    (tmp_path / "token").write_text("gf_embedded\n")
    assert ClientConfig.resolve(environ=home).token == "gf_embedded"
    (tmp_path / "config.toml").write_text('url = "https://lab/"\ntoken = "gf_file"\n')
    assert ClientConfig.resolve(environ=home) == ClientConfig("https://lab", "gf_file")
    env = {**home, "GANFORGE_API_URL": "http://env:1", "GANFORGE_TOKEN": "gf_env"}
    assert ClientConfig.resolve(environ=env) == ClientConfig("http://env:1", "gf_env")
    flags = ClientConfig.resolve("http://flag:2", "gf_flag", environ=env)
    assert flags == ClientConfig("http://flag:2", "gf_flag")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("url = [", "not a readable TOML file"), ("tokn = 'x'", "unknown key 'tokn'"),
     ("url = 3", "url must be a non-empty string")],
)  # fmt: skip
def test_a_bad_cli_config_file_names_itself(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match=fragment) as raised:
        ClientConfig.resolve(environ={"GANFORGE_HOME": str(tmp_path)})
    assert "config.toml" in str(raised.value)


def test_each_variable_moves_its_field_and_all_reach_a_child_process(tmp_path: Path) -> None:
    away = {
        "GANFORGE_HOME": str(tmp_path), "GANFORGE_DATABASE_URL": "postgresql://db/g",
        "GANFORGE_BROKER_URL": "redis://r:6379/0", "GANFORGE_STORAGE_URL": "s3://bucket/p",
        "GANFORGE_S3_ENDPOINT_URL": "http://s3:9000",
        "GANFORGE_S3_PUBLIC_ENDPOINT_URL": "https://s3.lab", "GANFORGE_QUEUE": "q2",
        "GANFORGE_TORCH_THREADS": "3", "GANFORGE_PROGRESS_INTERVAL_S": "0.5",
        "GANFORGE_VISIBILITY_TIMEOUT_S": "3600", "GANFORGE_CANCEL_GRACE_S": "2.5",
        "GANFORGE_MAX_ATTEMPTS": "5", "GANFORGE_API_URL": "https://api.lab/",
        "GANFORGE_TOKEN": "gf_x", "GANFORGE_NODE_NAME": "n1", "GANFORGE_CPU_SLOTS": "4",
        "GANFORGE_NODE_LABELS": "gpu=a100", "GANFORGE_NODE_ADDRESS": "10.0.0.2",
        "GANFORGE_NODE_TIMEOUT_S": "45", "GANFORGE_CLAIM_TIMEOUT_S": "120",
        "GANFORGE_USAGE_HALF_LIFE_S": "3600", "GANFORGE_JOB_SILENCE_S": "30",
        "GANFORGE_STORAGE_RETRY_S": "60", "GANFORGE_DATA_ROOTS": "/d1,/d2",
        "GANFORGE_RATE_LIMIT": "0", "GANFORGE_LOG_FLUSH_S": "1", "GANFORGE_LOG_FORMAT": " JSON ",
        "GANFORGE_METRICS_TOKEN": "m", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "GANFORGE_SCHEDULER_POLL_S": "2", "GANFORGE_WARM_SAMPLER": "off",
        "GANFORGE_FORK_SERVER": "off",
        "GANFORGE_SAMPLER_CACHE": "8", "GANFORGE_API_THREADS": "16",
        "GANFORGE_STREAMS_PER_PROCESS": "3", "GANFORGE_STREAMS_PER_TOKEN": "2",
        "GANFORGE_JOB_USER": "",
        "GANFORGE_CODE_CACHE_MB": "512", "GANFORGE_SHARD_CACHE_BYTES": "1000000000",
        "GANFORGE_STORAGE_QUOTA_BYTES": "1000000",
        "GANFORGE_RETENTION_INTERVAL_S": "60", "GANFORGE_ORPHAN_INTERVAL_S": "60",
        "GANFORGE_ORPHAN_GRACE_S": "600",
        "GANFORGE_WEBHOOK_RETRY_S": "3600",
        "GANFORGE_WEBHOOK_PRIVATE_ADDRESSES": "10.0.0.0/8, ::1",
        "GANFORGE_WEBHOOK_HISTORY_S": "86400",
    }  # fmt: skip
    default = Settings.from_env({})
    names = {field.name for field in dataclasses.fields(Settings)}
    moved = {
        variable: {n for n in names if getattr(one, n) != getattr(default, n)}
        for variable, value in away.items()
        for one in [Settings.from_env({variable: value})]
    }
    assert all(moved.values()) and set().union(*moved.values()) == names, moved
    settings = Settings.from_env(away)
    assert all(getattr(settings, n) != getattr(default, n) for n in names)
    # Two stay in the parent's environment, which a child inherits; unset optional ones are
    # left out, so a child falls back as this process did.
    inherited = {name: away[name] for name in ("GANFORGE_TOKEN", "PROMETHEUS_MULTIPROC_DIR")}
    assert set(settings.to_env()) == set(away) - set(inherited)
    assert Settings.from_env({**inherited, **settings.to_env()}) == settings
    optional = {"GANFORGE_S3_ENDPOINT_URL", "GANFORGE_S3_PUBLIC_ENDPOINT_URL",
                "GANFORGE_TORCH_THREADS", "GANFORGE_NODE_NAME", "GANFORGE_NODE_ADDRESS",
                "GANFORGE_METRICS_TOKEN"}  # fmt: skip
    assert set(default.to_env()) == set(away) - set(inherited) - optional


def test_an_empty_job_user_means_no_drop_while_unset_means_nobody() -> None:
    assert Settings.from_env({}).job_user == "nobody"
    assert Settings.from_env({"GANFORGE_JOB_USER": ""}).job_user == ""
    assert Settings.from_env({"GANFORGE_JOB_USER": " ganjobs "}).job_user == "ganjobs"
