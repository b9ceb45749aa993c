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
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Settings.from_env({name: value})


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
