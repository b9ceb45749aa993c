"""`ganforge code push / list / show`: your Python packages, run as GAN plugins and training
scripts; a spec names one by the id `push` prints."""

from __future__ import annotations

from pathlib import Path

import click

from cli import api_client, main
from cli.group import CliError
from cli.output import console, json_option, print_ids, print_json, print_table, quiet_option
from cli.packing import zip_folder
from shared.codebundles.archive import MAX_PACKED_BYTES


@main.group()
def code() -> None:
    """Upload and list code bundles (your Python packages)."""


@code.command("push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", default=None, help="Bundle name (default: the folder's name).")
def push(folder: Path, name: str | None) -> None:
    """Zip FOLDER and upload it; print the bundle's id.

    Left out: .git, __pycache__, *.pyc, virtual environments, node_modules and links. A
    folder holding __init__.py is packed under its own name (import it by that name)."""
    folder = folder.resolve()
    packed = zip_folder(folder)
    for link in packed.links:
        click.echo(f"left out {link}: a link", err=True)
    if not packed.names:
        raise CliError(f"{folder}: no files to push")
    if len(packed.data) > MAX_PACKED_BYTES:
        raise CliError(
            f"{folder} zips to {len(packed.data)} bytes, more than the {MAX_PACKED_BYTES} a "
            "bundle may be: leave data and weights out (datasets and checkpoints hold those)"
        )
    bundle, created = api_client().upload_code(
        packed.data, f"{folder.name}.zip", name or folder.name
    )
    modules = ", ".join(bundle["modules"][:8]) + (" ..." if len(bundle["modules"]) > 8 else "")
    state = "uploaded" if created else "already uploaded"
    click.echo(
        f"code bundle {bundle['name']} ({state}): {bundle['files']} files; modules: "
        f"{modules or 'none importable'}",
        err=True,
    )
    click.echo(bundle["id"])


@code.command("list")
@json_option
@quiet_option
def list_bundles(as_json: bool, quiet: bool) -> None:
    """Your code bundles and those shared with the lab."""
    found = api_client().code_bundles()
    if as_json:
        return print_json({"bundles": found})
    if quiet:
        return print_ids(bundle["id"] for bundle in found)
    rows = [
        [b["id"], b["name"], b["owner"], b["files"], b["size"], "yes" if b["shared"] else ""]
        for b in found
    ]
    print_table(("id", "name", "owner", "files", "bytes", "shared"), rows)


@code.command("show")
@click.argument("code_id")
@json_option
def show(code_id: str, as_json: bool) -> None:
    """Print a bundle and the modules a spec may name from it."""
    bundle = api_client().code_bundle(code_id)
    if as_json:
        return print_json(bundle)
    for field in ("id", "name", "owner", "format", "size", "unpacked_size", "files", "shared"):
        console.print(f"{field}: {bundle[field]}", highlight=False)
    console.print(f"created: {bundle['created_at']}", highlight=False)
    console.print("modules:", highlight=False)
    for module in bundle["modules"]:
        click.echo(f"  {module}")
