"""`python -m cli`: the `ganforge` command."""

from cli import main

main()
