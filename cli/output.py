"""How the CLI prints: tables people read, and JSON or bare ids for scripts.

A table on a terminal is a rich table as long as every id fits on its line whole; piped, or
on a terminal too narrow for that, it is plain aligned columns, so an id is never cut.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()

F = TypeVar("F", bound=Callable[..., Any])

# Space between the columns of a plain table.
PLAIN_GAP = "  "


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")(command)


def quiet_option(command: F) -> F:
    return click.option("-q", "--quiet", is_flag=True, help="Print ids only, one a line.")(command)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def print_ids(ids: Iterable[str]) -> None:
    for value in ids:
        click.echo(value)


def print_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    whole: Sequence[str] = ("id",),
    title: str | None = None,
) -> None:
    """Print rows under `headers`; the cells of the columns named in `whole` are never cut."""
    cells = [["" if value is None else str(value) for value in row] for row in rows]
    if console.is_terminal:
        rendered = _rich(headers, cells, whole, title)
        if rendered is not None:
            console.file.write(rendered)
            return
    lines = ([title] if title else []) + plain_lines(headers, cells)
    console.file.write("".join(f"{line}\n" for line in lines))


def plain_lines(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns, as wide as their widest cell, two spaces apart."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *cells, strict=True)]
    return [
        PLAIN_GAP.join(
            value.ljust(width) for value, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in [list(headers), *cells]
    ]


def _rich(
    headers: Sequence[str], cells: list[list[str]], whole: Sequence[str], title: str | None
) -> str | None:
    """The rich table as the terminal shows it, or None if it would fold a `whole` cell."""
    table = Table(title=title)
    for header in headers:
        table.add_column(header, no_wrap=header in whole)
    for row in cells:
        table.add_row(*(Text(value) for value in row))  # names are text, never rich markup
    with console.capture() as capture:
        console.print(table)
    rendered = capture.get()
    shown = Text.from_ansi(rendered).plain
    kept = [i for i, header in enumerate(headers) if header in whole]
    if all(row[i] in shown for row in cells for i in kept):
        return rendered
    return None


def moment(iso: object) -> str:
    """An API timestamp to the second, without the ISO 'T' and offset: 2026-12-06 23:19:37."""
    return str(iso)[:19].replace("T", " ")
