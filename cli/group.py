"""The root command group: how failures become one line on stderr and a distinct exit status,
and how `ganforge --help` lays the commands out (by topic, one a line)."""

from __future__ import annotations

from enum import IntEnum
from typing import IO, Any

import click
import requests

from cli.client import ApiError, ServiceUnreachableError
from shared.config import ConfigError


class ExitCode(IntEnum):
    """The exit statuses scripts can tell apart (README "Using it")."""

    OK = 0
    ERROR = 1  # anything else: a refused spec, a conflict, a server error, a bad config file
    USAGE = 2  # click's own: an unknown option, a missing argument
    AUTH = 3  # the API said 401 or 403: no token, a revoked or expired one, not allowed
    NOT_FOUND = 4  # the API said 404: no such job, dataset or token (or not yours)
    UNREACHABLE = 5  # no answer at all: refused, timed out, unknown host
    JOB_FAILED = 6  # a followed job ended failed or cancelled


class CliError(click.ClickException):
    """A failure the user can act on: printed as one `ganforge: ...` line, with its status."""

    def __init__(self, message: str, exit_code: int = ExitCode.ERROR) -> None:
        super().__init__(message)
        # click declares exit_code per class; ours is per error (ExitCode).
        self.exit_code = int(exit_code)  # type: ignore[misc]

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"ganforge: {self.format_message()}", file=file, err=file is None)


def exit_code_for(status: int) -> ExitCode:
    """The exit status of an API error answer."""
    if status in (401, 403):
        return ExitCode.AUTH
    if status == 404:
        return ExitCode.NOT_FOUND
    return ExitCode.ERROR


# `ganforge --help` groups its commands under these headings, in this order; a command not
# named here is listed under "Other commands".
HELP_SECTIONS: dict[str, tuple[str, ...]] = {
    "Jobs": (
        "submit",
        "jobs",
        "show",
        "events",
        "artifacts",
        "watch",
        "logs",
        "download",
        "cancel",
        "delete",
        "rerun",
        "priority",
    ),
    "Comparing runs": ("tag", "note", "compare"),
    "Quality": ("quality", "evaluate", "tensorboard"),
    "Sampling": ("invert",),
    "Data": ("datasets", "code"),
    "Pool": ("pool", "queue"),
    "Account": ("token", "usage", "webhook"),
    "Running the service": ("up", "demo", "api", "scheduler", "worker", "health", "db", "admin"),
}


class GanforgeGroup(click.Group):
    """A click group whose commands' API and connection errors end as `CliError`s."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as error:
            raise CliError(str(error), exit_code_for(error.status)) from None
        except ServiceUnreachableError as error:
            raise CliError(str(error), ExitCode.UNREACHABLE) from None
        except requests.RequestException as error:  # e.g. the connection broke mid-download
            raise CliError(
                f"the connection to the service broke: {error}", ExitCode.UNREACHABLE
            ) from None
        except ConfigError as error:
            raise CliError(str(error)) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        visible = {
            name: command
            for name in self.list_commands(ctx)
            if (command := self.get_command(ctx, name)) is not None and not command.hidden
        }
        if not visible:
            return
        width = max(len(name) for name in visible)
        limit = formatter.width - 6 - width
        sections = list(HELP_SECTIONS.items())
        named = {name for _, names in sections for name in names}
        sections.append(("Other commands", tuple(sorted(set(visible) - named))))
        for title, names in sections:
            # Names padded to the longest, so that every section's help starts in one column.
            rows = [
                (n.ljust(width), visible[n].get_short_help_str(limit))
                for n in names
                if n in visible
            ]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
