"""`ganforge webhook add / list / remove / deliveries`: job events POSTed to your URLs."""

from __future__ import annotations

import click

from cli import api_client, main
from cli.job_ids import JOB_ID, short_id
from cli.output import console, json_option, print_ids, print_json, print_table, quiet_option
from shared.webhooks.subscriptions import EVENTS


@main.group()
def webhook() -> None:
    """Have job events POSTed to a URL of yours, signed."""


@webhook.command("add")
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    type=click.Choice(EVENTS),
    help="An event to send (repeat it; default: all).",
)
@click.option("--job", "job_id", type=JOB_ID, help="Only this job's events (default: all yours).")
def add_webhook(url: str, events: tuple[str, ...], job_id: str | None) -> None:
    """Send events to URL; prints its secret, once.

    Each POST carries X-Ganforge-Signature: sha256=<HMAC-SHA256 of the body with the secret>."""
    created = api_client().add_webhook(url, list(events), job_id)
    scope = f"job {created['job_id']}" if created["job_id"] else "all your jobs"
    console.print(
        f"webhook {created['id']}: {', '.join(created['events'])} of {scope}; secret:",
        highlight=False,
    )
    click.echo(created["secret"])


@webhook.command("list")
@json_option
@quiet_option
def list_webhooks(as_json: bool, quiet: bool) -> None:
    """Your webhooks (without secrets)."""
    rows = api_client().webhooks()
    if as_json:
        return print_json({"webhooks": rows})
    if quiet:
        return print_ids(row["id"] for row in rows)
    cells = [
        [row["id"], row["url"], ",".join(row["events"]), short_id(row["job_id"] or "") or "all"]
        for row in rows
    ]
    print_table(("id", "url", "events", "job"), cells)


@webhook.command("remove")
@click.argument("webhook_id")
def remove_webhook(webhook_id: str) -> None:
    """Delete a webhook (its pending deliveries too)."""
    api_client().remove_webhook(webhook_id)
    console.print(f"webhook {webhook_id} removed", highlight=False)


@webhook.command("deliveries")
@click.argument("webhook_id")
@json_option
def list_deliveries(webhook_id: str, as_json: bool) -> None:
    """A webhook's latest 50 deliveries."""
    rows = api_client().webhook_deliveries(webhook_id)
    if as_json:
        return print_json({"deliveries": rows})
    cells = [
        [
            row["id"],
            row["event"],
            short_id(row["job_id"]),
            row["state"],
            row["attempts"],
            row["last_status"] or row["last_error"] or "",
            (row["next_try_at"] or "")[:19],
        ]
        for row in rows
    ]
    print_table(("id", "event", "job", "state", "tries", "last answer", "next try"), cells)
