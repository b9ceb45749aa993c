"""`ganforge datasets upload / list / shard`: the datasets jobs can name by id, and image
folders written as shards locally."""

from __future__ import annotations

from pathlib import Path

import click

from cli import api_client, main
from cli.output import console, json_option, print_ids, print_json, print_table, quiet_option
from shared.datafiles.errors import DataFileError
from shared.datafiles.shards import IMAGES_PER_SHARD, write_shards


@main.group()
def datasets() -> None:
    """Upload and list datasets (npz, zip/tar of images, MNIST idx)."""


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Dataset name (default: the file name).")
@click.option(
    "--shards/--no-shards",
    default=None,
    help="Store an image archive as shards, streamed by training jobs (default: when its "
    "images decode past 1 GiB).",
)
def upload_dataset(path: Path, name: str | None, shards: bool | None) -> None:
    """Upload PATH; a spec then names it by its id.

    In a spec: {"source": "dataset", "dataset_id": "<id>"}."""
    dataset = api_client().upload_dataset(path, name or path.stem, shards)
    console.print(
        f"dataset [bold]{dataset['id']}[/]: {dataset['items']} {dataset['kind']} {dataset['shape']}"
        f"{' as shards' if dataset['format'] == 'shards' else ''}"
    )


@datasets.command("shard")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--images-per-shard", type=click.IntRange(min=1), default=IMAGES_PER_SHARD, show_default=True
)
def shard_dataset(source: Path, out: Path, images_per_shard: int) -> None:
    """Write the images of SOURCE (a folder, .zip or .tar of PNG/JPEG, class sub-folders
    as labels) into folder OUT as tar shards and shards.json, locally.

    Train on OUT with {"source": "images", "path": "OUT"} on a worker that can read it, or
    copy OUT's files under a store prefix datasets/<name>/ and use {"key": ...}."""
    if out.exists() and any(out.iterdir()):
        raise click.UsageError(f"{out} is not empty")
    try:
        index = write_shards(source, out, images_per_shard=images_per_shard)
    except DataFileError as exc:
        raise click.UsageError(str(exc)) from None
    classes = f", {len(index.classes)} classes" if index.classes else ""
    console.print(f"{index.count} images in {len(index.shards)} shards{classes}: {out}")


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
