"""`ganforge code push / list / show`: what the zip of a folder leaves out, that the same
folder zips to the same bytes (so to the same bundle), and the commands against the real API
served in-process on SQLite and a local folder."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from click.testing import CliRunner, Result

from cli import main
from cli.packing import bundle_files, zip_folder

SHA = re.compile(r"^[0-9a-f]{64}$")


def make_project(root: Path) -> Path:
    """A research folder: a package, a script, and what must not be pushed."""
    files = {
        "mygan/__init__.py": "",
        "mygan/nets.py": "class Generator: ...\n",
        "mygan/__pycache__/nets.cpython-311.pyc": "",
        "mygan/old.pyc": "",
        "train.py": "import mygan\n",
        "configs/small.json": "{}",
        ".git/config": "[core]",
        ".venv/lib/site.py": "",
        "env/pyvenv.cfg": "home = /usr/bin",
        "env/lib/python3.11/site-packages/torch/__init__.py": "",
        "web/node_modules/left-pad/index.js": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "secrets.py").symlink_to("/etc/hostname")
    (root / "linked").symlink_to(root / "configs", target_is_directory=True)
    return root


def test_the_zip_leaves_out_vcs_bytecode_environments_and_links(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    files, links = bundle_files(root)
    assert [name for name, _ in files] == [
        "configs/small.json",
        "mygan/__init__.py",
        "mygan/nets.py",
        "train.py",
    ]
    assert links == ["linked", "secrets.py"]
    packed = zip_folder(root)
    assert zip_folder(root).data == packed.data, "the same files, the same bytes"
    with zipfile.ZipFile(io.BytesIO(packed.data)) as archive:
        assert archive.namelist() == packed.names


def test_a_package_folder_is_packed_under_its_own_name(tmp_path: Path) -> None:
    package = make_project(tmp_path / "project") / "mygan"
    assert [name for name, _ in bundle_files(package)[0]] == ["mygan/__init__.py", "mygan/nets.py"]


def run(home: Path, url: str, token: str, *args: str) -> Result:
    env = {"GANFORGE_HOME": str(home), "GANFORGE_API_URL": None, "GANFORGE_TOKEN": None}
    return CliRunner().invoke(main, ["--url", url, "--token", token, *args], env=env)


def test_push_prints_the_id_and_list_and_show_find_it(
    api_url: str, alice: str, tmp_path: Path
) -> None:
    root = make_project(tmp_path / "project")
    home = tmp_path / "cli-home"
    first = run(home, api_url, alice, "code", "push", str(root), "--name", "gan plugins")
    assert first.exit_code == 0, first.output
    code_id = first.stdout.strip()
    assert SHA.fullmatch(code_id) and "uploaded" in first.stderr and "mygan.nets" in first.stderr
    again = run(home, api_url, alice, "code", "push", str(root))
    assert again.stdout.strip() == code_id and "already uploaded" in again.stderr

    listed = run(home, api_url, alice, "code", "list", "-q")
    assert listed.stdout.split() == [code_id]
    table = run(home, api_url, alice, "code", "list")
    assert "gan plugins" in table.stdout and code_id in table.stdout
    shown = run(home, api_url, alice, "code", "show", code_id)
    assert shown.exit_code == 0, shown.output
    assert re.findall(r"^  (\S+)$", shown.stdout, re.M) == ["mygan", "mygan.nets", "train"]
    missing = run(home, api_url, alice, "code", "show", "0" * 64)
    assert missing.exit_code == 4 and "no code bundle" in missing.stderr
