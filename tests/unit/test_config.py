from pathlib import Path

import pytest

from shared.config import ConfigError, Settings


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
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Settings.from_env({name: value})


def test_settings_survive_a_trip_through_a_child_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"GANFORGE_HOME": str(tmp_path), "GANFORGE_QUEUE": "q1"})
    assert Settings.from_env(settings.to_env()) == settings
