"""The layout of the sample grids the service draws (worker/gan/grids.py): what the API checks
an inversion's grid against and the worker cuts it by. Apart from both, with no imports, so
a job's sandboxed processes read it without the API's domain layer."""

from __future__ import annotations

# Pixels between and around the cells of the grids the service draws (worker/gan/grids.py
# GRID_PADDING; tests/unit/test_inversion_specs.py checks the two agree).
GRID_PADDING = 2


def grid_layout(
    width: int, height: int, cell_width: int, cell_height: int
) -> tuple[int, int] | None:
    """(rows, columns) of a service grid `width` x `height` px of cells that size, or None
    when the picture cannot be one."""
    rows, row_rest = divmod(height - GRID_PADDING, cell_height + GRID_PADDING)
    columns, column_rest = divmod(width - GRID_PADDING, cell_width + GRID_PADDING)
    if rows < 1 or columns < 1 or row_rest or column_rest:
        return None
    return rows, columns
