"""Job ids as people type them: any unique start of 8 or more characters stands for the whole
32-character id, in every command that takes one; tables show the first SHORT_ID_LENGTH.

A prefix is resolved by the API (`GET /api/v1/jobs?id_prefix=`), among the jobs the caller
may see, so a short id never reaches a URL and a prefix never matches someone else's job.
"""

from __future__ import annotations

import re
from typing import Any

import click

from cli.client import ApiError
from cli.group import CliError, ExitCode

# What the dashboard and `ganforge jobs` show, and the least a command accepts.
SHORT_ID_LENGTH = 8
WHOLE_ID = re.compile(r"[0-9a-f]{32}")
PREFIX = re.compile(r"[0-9a-f]{8,31}")


def short_id(job_id: str) -> str:
    return job_id[:SHORT_ID_LENGTH]


def resolve_job_id(client: Any, given: str) -> str:
    """The whole id of the caller's job whose id is or starts with `given`; CliError when
    it is malformed, matches none or matches several (naming them)."""
    given = given.strip().lower()
    if WHOLE_ID.fullmatch(given):
        return given
    if not PREFIX.fullmatch(given):
        raise CliError(
            f"{given!r} is not a job id: give its first {SHORT_ID_LENGTH} or more characters "
            "(0-9, a-f), as `ganforge jobs` shows them",
            ExitCode.USAGE,
        )
    matches = _jobs_starting(client, given, every_user=False)
    if not matches:
        matches = _jobs_starting(client, given, every_user=True)  # an admin's view of others
    if not matches:
        raise CliError(f"no job of yours has an id starting {given}", ExitCode.NOT_FOUND)
    if len(matches) > 1:
        listed = ", ".join(job["id"] for job in matches)
        raise CliError(f"{given} starts the ids of several jobs ({listed}): give more of it")
    return str(matches[0]["id"])


def _jobs_starting(client: Any, prefix: str, every_user: bool) -> list[dict[str, Any]]:
    try:
        page = client.jobs(id_prefix=prefix, limit=2, all="true" if every_user else None)
    except ApiError as error:
        if every_user and error.status == 403:  # not an admin: only their own jobs count
            return []
        raise
    return list(page["jobs"])


class JobIdType(click.ParamType):
    """A job id argument: a whole id, or a unique start of one, resolved to the whole id."""

    name = "JOB_ID"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from cli import api_client  # the root group's flags name the service

        return resolve_job_id(api_client(), str(value))


JOB_ID = JobIdType()
