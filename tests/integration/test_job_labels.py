"""Tags and text filters on PostgreSQL: the LIKE over the tags column's JSON text
(shared/jobs/tags.py) must pick the same jobs there as on SQLite (tests/unit/test_compare.py,
whose tests run here again on the real database)."""

from __future__ import annotations

from flask.testing import FlaskClient

import tests.unit.test_compare as on_sqlite
from shared.config import Settings


def test_the_list_filters_by_tags_and_text_on_postgresql(
    client: FlaskClient, alice: str, bob: str
) -> None:
    on_sqlite.test_the_list_filters_by_every_tag_and_by_text_in_name_or_note(client, alice, bob)


def test_compare_picks_tagged_runs_on_postgresql(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    on_sqlite.test_compare_shows_only_the_spec_fields_that_differ_and_each_run_s_figures(
        client, alice, settings
    )
