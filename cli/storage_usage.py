"""`ganforge usage`, `delete` and `admin set-quota`: what you store, and freeing it."""

from __future__ import annotations

import sys
from typing import Any

import click

from cli import admin, api_client, main
from cli.group import CliError, ExitCode
from cli.job_ids import JOB_ID, short_id
from cli.output import console, json_option, print_json, print_table
from shared.storage_quota import format_bytes

# What `set-quota` takes for "follow the service's default" (the API's null).
DEFAULT_WORD = "default"


@main.command()
@click.option("--all", "every_user", is_flag=True, help="Admins: every user's.")
@json_option
def usage(every_user: bool, as_json: bool) -> None:
    """Bytes you store, your quota, your largest jobs."""
    report = api_client().usage(every_user)
    if as_json:
        return print_json(report)
    print_table(
        ("user", "total", "artifacts", "datasets", "code", "quota"),
        [_user_row(user) for user in report["users"]],
        whole=(),
    )
    if report["largest_jobs"]:
        print_table(
            ("id", "owner", "state", "artifacts", "size", "name"),
            [_job_row(job) for job in report["largest_jobs"]],
            title="largest jobs (`ganforge delete JOB` frees one)",
        )


def _job_row(job: dict[str, Any]) -> list[str]:
    size = format_bytes(job["bytes"])
    return [short_id(job["id"]), job["owner"], job["state"], job["artifacts"], size, job["name"]]


def _user_row(user: dict[str, Any]) -> list[str]:
    quota = user["quota_bytes"]
    shown = "none" if quota is None else format_bytes(quota)
    if user["over_quota"]:
        shown += " (reached)"
    sizes = ("total_bytes", "artifacts_bytes", "datasets_bytes", "code_bytes")
    return [user["user"], *(format_bytes(user[size]) for size in sizes), shown]


@main.command()
@click.argument("job_id", type=JOB_ID)
@click.option("--yes", is_flag=True, help="Delete without asking (scripts must pass it).")
def delete(job_id: str, yes: bool) -> None:
    """Delete a finished job and everything it stored."""
    if not yes:
        if not sys.stdin.isatty():  # a script: nobody to ask
            raise CliError(
                f"deleting job {job_id} cannot be undone: pass --yes to confirm", ExitCode.USAGE
            )
        click.confirm(f"Delete job {job_id} with its checkpoints and artifacts?", abort=True)
    api_client().delete_job(job_id)
    console.print(f"deleted job {job_id}")


class QuotaBytes(click.ParamType):
    """Bytes as a whole number, with an optional K/M/G/T suffix (powers of 1024), or `default`."""

    name = "BYTES"
    UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | None:
        text = str(value).strip().upper().removesuffix("IB").removesuffix("B")
        if text == DEFAULT_WORD.upper():
            return None
        unit = text[-1:] if text[-1:] in self.UNITS else ""
        number = text.removesuffix(unit) if unit else text
        if not number.isdigit():
            self.fail(f"{value!r}: give bytes (e.g. 500G, 0 for no limit) or {DEFAULT_WORD}")
        return int(number) * self.UNITS[unit]


@admin.command("set-quota")
@click.argument("user")
@click.argument("quota", metavar="BYTES", type=QuotaBytes())
def set_quota(user: str, quota: int | None) -> None:
    """Set USER's storage quota: e.g. 500G, 0 (none), default.

    `default` makes them follow GANFORGE_STORAGE_QUOTA_BYTES again."""
    answer = api_client().set_storage_quota(user, quota)
    effective = answer["effective_quota_bytes"]
    shown = (
        "without limit" if effective is None else f"{format_bytes(effective)} ({effective} bytes)"
    )
    console.print(f"{answer['user']} may store {shown}", highlight=False)
