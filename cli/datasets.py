"""`ganforge datasets upload / list`: the datasets jobs can name by id."""

from __future__ import annotations

from pathlib import Path

import click

from cli import api_client, main
from cli.output import console, json_option, print_ids, print_json, print_table, quiet_option


@main.group()
def datasets() -> None:
    """Upload and list datasets (npz, zip/tar of images, MNIST idx)."""


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Dataset name (default: the file name).")
def upload_dataset(path: Path, name: str | None) -> None:
    """Upload PATH; a spec then names it by its id.

    In a spec: {"source": "dataset", "dataset_id": "<id>"}."""
    dataset = api_client().upload_dataset(path, name or path.stem)
    console.print(
        f"dataset [bold]{dataset['id']}[/]: {dataset['items']} {dataset['kind']} {dataset['shape']}"
    )


@datasets.command("list")
@json_option
@quiet_option
def list_datasets(as_json: bool, quiet: bool) -> None:
    """Your datasets and those shared with the lab."""
    found = api_client().datasets()
    if as_json:
        return print_json({"datasets": found})
    if quiet:
        return print_ids(dataset["id"] for dataset in found)
    rows = [[d["id"], d["name"], d["kind"], d["items"], d["shape"], d["size"]] for d in found]
    print_table(("id", "name", "kind", "items", "shape", "bytes"), rows)
