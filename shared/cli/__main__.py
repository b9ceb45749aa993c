"""`python -m shared.cli`: the `ganforge` command."""

from shared.cli import main

main()
