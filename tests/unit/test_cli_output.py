"""How the CLI prints tables: ids are never cut, on an 80-column terminal or piped."""

from __future__ import annotations

import io
import uuid

import pytest
from rich.console import Console

from cli import output
from cli.output import plain_lines, print_table

HEADERS = ("id", "kind", "name", "state", "progress", "created")


def rows(count: int = 3) -> list[list[str]]:
    return [
        [uuid.uuid4().hex, "train", f"dcgan on mnist, width 64, seed {i}", "running", "42%", ""]
        for i in range(count)
    ]


def terminal(monkeypatch: pytest.MonkeyPatch, width: int) -> io.StringIO:
    screen = io.StringIO()
    console = Console(file=screen, width=width, force_terminal=True, color_system=None)
    monkeypatch.setattr(output, "console", console)
    return screen


@pytest.mark.parametrize("width", [80, 60, 40])
def test_a_terminal_table_keeps_every_id_whole_on_one_line(
    monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    screen = terminal(monkeypatch, width)
    table = rows()
    print_table(HEADERS, table)
    shown = screen.getvalue()
    for row in table:
        assert any(row[0] in line for line in shown.splitlines()), (width, shown)


def cells_of(line: str, bar: str) -> list[str]:
    """The cells of one line of a rich table, between its `bar`s, stripped."""
    assert line.startswith(bar) and line.endswith(bar), line
    return [cell.strip() for cell in line[1:-1].split(bar)]


def shown_as(full: str, cell: str) -> bool:
    """`cell` shows `full`, whole or cut with an ellipsis."""
    return cell == full or (cell.endswith("…") and full.startswith(cell[:-1]))


def test_a_terminal_wide_enough_gets_the_rich_table(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = terminal(monkeypatch, 80)
    table = rows(1)
    print_table(HEADERS, table)
    assert "━" in screen.getvalue() or "─" in screen.getvalue()
    lines = screen.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    # A boxed table: a heavy frame around the headers, one row of cells below.
    assert lines[0].startswith("┏") and lines[2].startswith("┡") and lines[-1].startswith("└")
    headers = cells_of(lines[1], "┃")
    assert len(headers) == len(HEADERS)
    assert all(shown_as(full, cell) for full, cell in zip(HEADERS, headers, strict=True))
    assert headers[:3] == ["id", "kind", "name"]
    body = [cells_of(line, "│") for line in lines[3:-1]]
    (row,) = table
    identifier, kind, name, state, progress, created = zip(*body, strict=True)
    assert identifier[0] == row[0] and not any(identifier[1:])  # whole, on the first line
    assert kind[0] == "train" and progress[0] == "42%" and not any(created)
    assert shown_as("running", state[0])
    assert " ".join(part for part in name if part) == row[2]  # wrapped over lines, not cut


def test_plain_columns_line_up_and_keep_every_cell() -> None:
    lines = plain_lines(("id", "name"), [["a" * 32, "x"], ["b" * 32, "a longer name"]])
    assert lines == [
        "id                                name",
        f"{'a' * 32}  x",
        f"{'b' * 32}  a longer name",
    ]


def test_cells_are_text_not_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = terminal(monkeypatch, 120)
    print_table(("id", "name"), [["a" * 32, "[bold]not bold[/] [/oops]"]])
    assert "[bold]not bold[/] [/oops]" in screen.getvalue()
