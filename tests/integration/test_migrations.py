"""The schema comes from Alembic, and the models never drift from it."""

from itertools import pairwise

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select

from shared.db import session_scope
from shared.migrate import alembic_config, upgrade
from shared.models import Base, JobTimingBucket, User
from shared.states import JobState as S
from shared.states import insert_created, transition
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


def test_0016_counts_the_history_as_the_state_machine_counts_new_moves(
    postgres: TestServer,
) -> None:
    """Jobs moved at head are counted as they move; migrating 0015 -> 0016 again counts
    the same history from its rows, bucket for bucket."""
    with fresh_database(postgres.url) as url:
        upgrade(url)
        with session_scope(url) as session:
            owner = User(name="alice")
            session.add(owner)
            session.flush()
            for index, path in enumerate(HISTORIES):
                job = insert_created(session, _job_values(owner.id, f"j{index}"))
                for current, target in pairwise(path):
                    assert transition(session, job.id, current, target, "test")
        live = _timing_rows(url)
        assert {row[0] for row in live} == {"queue_wait", "duration", "ended"}

        from alembic import command

        command.downgrade(alembic_config(url), "0015")
        upgrade(url)
        assert _timing_rows(url) == live


HISTORIES = [
    (S.QUEUED, S.SCHEDULED, S.RUNNING, S.SUCCEEDED),
    (S.QUEUED, S.SCHEDULED, S.RUNNING, S.LOST, S.QUEUED, S.SCHEDULED, S.RUNNING, S.FAILED),
    (S.QUEUED, S.SCHEDULED, S.QUEUED, S.CANCELLED),
    (S.QUEUED, S.SCHEDULED, S.RUNNING),
]


def _job_values(owner_id: str, name: str) -> dict[str, object]:
    return {
        "owner_id": owner_id,
        "kind": "train",
        "name": name,
        "spec": {},
        "state": "queued",
        "max_attempts": 3,
    }


def _timing_rows(url: str) -> list[tuple[object, ...]]:
    with session_scope(url) as session:
        rows = session.execute(
            select(JobTimingBucket).order_by(*JobTimingBucket.__table__.primary_key)
        ).scalars()
        return [(r.metric, r.kind, r.state, r.bucket, r.count, round(r.total, 6)) for r in rows]
