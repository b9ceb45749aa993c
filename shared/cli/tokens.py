"""`ganforge token list / create / revoke`: your bearer tokens (an admin's: anyone's)."""

from __future__ import annotations

import click
from rich.table import Table

from shared.cli import _api, _client, console, main


@main.group()
def token() -> None:
    """Your API tokens: one per machine or script, each revocable on its own."""


@token.command("list")
@click.option("--all", "every_user", is_flag=True, help="every user's tokens (admins)")
def list_tokens(every_user: bool) -> None:
    """Your tokens: name, state, expiry and last use (never their values)."""
    rows = _api(_client().tokens, every_user)
    table = Table("id", "name", "state", "created", "expires", "last used")
    if every_user:
        table.add_column("owner")
    for row in rows:
        cells = [row["id"], row["name"], row["state"], row["created_at"][:19]]
        cells += [(row["expires_at"] or "never")[:19], (row["last_used_at"] or "")[:19]]
        table.add_row(*cells, *([row["owner"]] if every_user else []))
    console.print(table)


@token.command("create")
@click.argument("name")
@click.option("--expires-in", "days", type=click.IntRange(1, 3650), help="days until it expires")
def create_token(name: str, days: int | None) -> None:
    """Create a token NAME and print it (shown this once; only its hash is kept)."""
    created = _api(_client().create_token, name, days)
    console.print(
        f"token {created['id']} ({created['name']}), expires {created['expires_at'] or 'never'}:",
        highlight=False,
    )
    click.echo(created["token"])


@token.command("revoke")
@click.argument("token_id")
def revoke_token(token_id: str) -> None:
    """Revoke token TOKEN_ID at once (admins: anyone's)."""
    revoked = _api(_client().revoke_token, token_id)
    console.print(f"token {revoked['id']} ({revoked['name']}) revoked")
