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


def test_a_terminal_wide_enough_gets_the_rich_table(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = terminal(monkeypatch, 80)
    print_table(HEADERS, rows(1))
    assert "━" in screen.getvalue() or "─" in screen.getvalue()


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
