"""The documented example specs (examples/*.json) are valid requests, are accepted as shipped
by the embedded service (and find their data there), and train; the README's first spec is
the ring8 recipe."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from bench.quality_setups import EXAMPLE_SETUPS
from cli import main
from cli.embedded import prepare
from shared.config import Settings
from shared.example_data import EXAMPLE_DATA, seed_example_data
from shared.specs import TrainSpec, validate_job_request
from shared.storage.factory import open_storage
from tests.helpers import auth
from tests.unit.gan.gan_testing import RecordingHooks
from worker.agent.inputs import fetch_data
from worker.gan.mnist_files import load_mnist_labelled

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPOSITORY / "examples").glob("*.json"))


def test_there_is_an_example_for_every_built_in_dataset() -> None:
    assert [path.stem for path in EXAMPLES] == [
        "gauss1d", "grid25", "mnist-conditional", "mnist", "ring8-fast", "ring8"
    ]  # fmt: skip


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_an_example_is_a_valid_request(path: Path) -> None:
    _, spec = validate_job_request(
        {"kind": "train", "name": path.stem, "spec": json.loads(path.read_text())}
    )
    assert isinstance(spec, TrainSpec)


@pytest.mark.parametrize("name", sorted(EXAMPLE_SETUPS))
def test_an_example_trains_a_few_steps(name: str) -> None:
    from worker.gan.train import train

    raw = EXAMPLE_SETUPS[name]
    spec = TrainSpec.model_validate(
        {**raw, "train": {**raw["train"], "steps": 4}, "checkpoint_every": 4, "sample_every": 4}
    )
    hooks = RecordingHooks()
    assert train(spec, hooks=hooks).step == 4
    assert hooks.evaluations, "the last step is evaluated"


def test_the_demo_trains_the_fast_ring8_example_the_ring8_recipe_in_fewer_steps() -> None:
    """`ganforge demo` submits examples/ring8-fast.json as shipped; that file is the ring8
    recipe with fewer steps and R1 on D, its other choices unchanged."""
    from cli.demo import DEMO_SPEC

    fast = json.loads((EXAMPLES[0].parent / "ring8-fast.json").read_text())
    assert fast == DEMO_SPEC
    ring8 = json.loads((EXAMPLES[0].parent / "ring8.json").read_text())
    assert fast["train"]["steps"] < ring8["train"]["steps"]
    assert fast["loss"]["r1_gamma"] > 0 and "loss" not in ring8
    same = ("model", "latent", "data")
    assert {k: fast[k] for k in same} == {k: ring8[k] for k in same}
    assert {**fast["train"], "steps": None} == {**ring8["train"], "steps": None}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_the_embedded_service_takes_an_example_as_shipped_and_holds_its_data(
    path: Path, settings: Settings, client: FlaskClient, tmp_path: Path
) -> None:
    """What `ganforge submit examples/<name>.json` does on a fresh `ganforge up`: the
    embedded defaults (no data roots), the local user's token, the spec file unchanged."""
    token = prepare(settings)
    raw = json.loads(path.read_text())
    response = client.post(
        "/api/v1/jobs", json={"kind": "train", "name": path.stem, "spec": raw}, headers=auth(token)
    )
    assert response.status_code == 201, response.get_json()
    # The worker finds the data it names: the agent's fetch, then the loader and labels.
    spec = TrainSpec.model_validate(raw)
    folder = fetch_data(spec.data, open_storage(settings), tmp_path, settings.data_roots)
    if spec.data.source == "mnist":
        assert folder is not None
        images, labels = load_mnist_labelled(folder) or (None, None)
        assert images is not None and labels is not None and len(images) == len(labels) == 4000
    else:
        assert spec.data.source.startswith("toy:") and folder is None


def test_example_data_is_stored_once(settings: Settings) -> None:
    store = open_storage(settings)
    assert len(seed_example_data(store)) == sum(len(names) for _, names in EXAMPLE_DATA.values())
    assert seed_example_data(store) == []  # a second `ganforge up` stores nothing again


def test_the_readmes_first_training_spec_is_the_ring8_recipe() -> None:
    """The first spec a reader meets trains to 8/8 modes (the README's "Quality over 3
    seeds"); it is the examples/ring8.json recipe with its defaults written out."""
    readme = (REPOSITORY / "README.md").read_text()
    after = readme[readme.index("A training spec (every field") :]
    first = json.loads(re.search(r"```json\n(.*?)```", after, re.S).group(1))  # type: ignore[union-attr]
    ring8 = json.loads((REPOSITORY / "examples" / "ring8.json").read_text())
    assert TrainSpec.model_validate(first) == TrainSpec.model_validate(ring8)


def test_admin_seed_examples_stores_the_example_data_in_the_services_store(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    result = CliRunner().invoke(main, ["admin", "seed-examples"], env={"GANFORGE_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert "stored 2 example file(s)" in result.output
    store = open_storage(Settings.from_env({"GANFORGE_HOME": str(home)}))
    assert len(store.list("datasets/examples/mnist/")) == 2
