"""The wheel carries what the commands need after install: configs, sample data, completions."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("stagectl-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_ships_every_default_config(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for config in sorted((REPO_ROOT / "config").rglob("*.yaml")):
        relative = config.relative_to(REPO_ROOT / "config").as_posix()
        assert f"stagectl/defaults/{relative}" in names, relative


def test_wheel_ships_the_bundled_sample_and_its_manifest(wheel: zipfile.ZipFile) -> None:
    manifest = json.loads(wheel.read("stagectl/data/sample/MANIFEST.json"))
    names = set(wheel.namelist())
    files = [entry["file"] for entry in manifest["datasets"]]
    assert len(files) >= 12
    for name in files:
        assert f"stagectl/data/sample/{Path(name).name}" in names
    # stagectl route's offline venue
    assert "stagectl/data/sample/books/binance_perp_BTCUSDT_book_top25_2020-09-01.csv.gz" in names


def test_wheel_ships_the_completion_scripts(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for script in ("stagectl.bash", "_stagectl", "stagectl.fish"):
        assert f"stagectl/completions/{script}" in names


def test_wheel_ships_the_service_templates(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for template in sorted((REPO_ROOT / "deploy").iterdir()):
        assert f"stagectl/deploy/{template.name}" in names, template.name
