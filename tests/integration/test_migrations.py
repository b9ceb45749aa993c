"""The schema comes from Alembic, and the models never drift from it."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from shared.migrate import alembic_config, upgrade
from shared.models import Base
from tests.servers import TestServer
from tests.services import fresh_database


def test_upgrade_head_builds_exactly_the_models_schema(postgres: TestServer) -> None:
    with fresh_database(postgres.url) as url:
        upgrade(url)
        engine = create_engine(url)
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        engine.dispose()
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_downgrade_to_base_and_back(postgres: TestServer) -> None:
    from alembic import command

    with fresh_database(postgres.url) as url:
        upgrade(url)
        command.downgrade(alembic_config(url), "base")
        engine = create_engine(url)
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        engine.dispose()
        upgrade(url)
        engine = create_engine(url)
        assert {"jobs", "job_events", "artifacts", "users", "api_tokens"} <= set(
            inspect(engine).get_table_names()
        )
        engine.dispose()
