"""`ganforge token list / create / revoke`: your bearer tokens (an admin's: anyone's)."""

from __future__ import annotations

import click

from cli import api_client, main
from cli.output import console, json_option, print_ids, print_json, print_table, quiet_option


@main.group()
def token() -> None:
    """Your API tokens: one per machine or script, each revocable."""


@token.command("list")
@click.option("--all", "every_user", is_flag=True, help="Every user's tokens (admins).")
@json_option
@quiet_option
def list_tokens(every_user: bool, as_json: bool, quiet: bool) -> None:
    """Your tokens: name, state, expiry and last use (never their values)."""
    rows = api_client().tokens(every_user)
    if as_json:
        return print_json({"tokens": rows})
    if quiet:
        return print_ids(row["id"] for row in rows)
    headers = ["id", "name", "state", "created", "expires", "last used"]
    if every_user:
        headers.append("owner")
    cells = []
    for row in rows:
        line = [row["id"], row["name"], row["state"], row["created_at"][:19]]
        line += [(row["expires_at"] or "never")[:19], (row["last_used_at"] or "")[:19]]
        cells.append(line + ([row["owner"]] if every_user else []))
    print_table(headers, cells)


@token.command("create")
@click.argument("name")
@click.option("--expires-in", "days", type=click.IntRange(1, 3650), help="Days until it expires.")
def create_token(name: str, days: int | None) -> None:
    """Create a token NAME and print it (shown this once)."""
    created = api_client().create_token(name, days)
    console.print(
        f"token {created['id']} ({created['name']}), expires {created['expires_at'] or 'never'}:",
        highlight=False,
    )
    click.echo(created["token"])


@token.command("revoke")
@click.argument("token_id")
def revoke_token(token_id: str) -> None:
    """Revoke token TOKEN_ID at once (admins: anyone's)."""
    revoked = api_client().revoke_token(token_id)
    console.print(f"token {revoked['id']} ({revoked['name']}) revoked")
