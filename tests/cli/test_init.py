"""`stagectl init`: creates a home, keeps existing configs, migrates the state."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from stagectl.config.home import defaults_dir
from stagectl.state.migration_names import MIGRATION_NAMES
from tests.conftest import Run

PACKAGED = sorted(
    p.relative_to(defaults_dir()).as_posix()
    for p in defaults_dir().rglob("*")
    if p.is_file() and "__pycache__" not in p.parts
)


def test_init_creates_the_home_layout_configs_and_a_migrated_state(run: Run, home: Path) -> None:
    result = run(["init"])
    assert result.exit_code == 0, result.stderr
    for name in ("config", "state", "artifacts", "reports", "logs", "metrics"):
        assert (home / name).is_dir()
    assert "baselines/stage6-2024-06-07.yaml" in PACKAGED
    for name in PACKAGED:
        assert (home / "config" / name).read_bytes() == (defaults_dir() / name).read_bytes()
    conn = sqlite3.connect(home / "state" / "stagectl.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert f"schema version {len(MIGRATION_NAMES)}" in result.stdout


def test_init_json_is_one_document(run: Run, home: Path) -> None:
    result = run(["init", "--json"])
    assert result.exit_code == 0
    document = result.json()
    assert document["home"] == str(home)
    assert document["schema_version"] == len(MIGRATION_NAMES)
    assert document["migrations_applied"] == list(MIGRATION_NAMES)
    assert document["config"]["written"] == PACKAGED
    assert document["created_dirs"] == [
        "config",
        "state",
        "artifacts",
        "reports",
        "logs",
        "metrics",
        "artifacts/stage3",
    ]
    assert document["notes"] == []


def test_init_again_keeps_edited_configs_and_says_so(run: Run, home: Path) -> None:
    run(["init"])
    core = home / "config" / "core.yaml"
    core.write_text("# edited by the desk\n")
    result = run(["init"])
    assert result.exit_code == 0
    assert core.read_text() == "# edited by the desk\n"
    assert "kept config/core.yaml" in result.stderr
    document = run(["init", "--json"]).json()
    assert document["config"]["kept"] == PACKAGED
    assert document["migrations_applied"] == []
    assert document["created_dirs"] == []


def test_init_force_overwrites_configs_but_keeps_the_state(run: Run, home: Path) -> None:
    run(["init"])
    (home / "config" / "core.yaml").write_text("# edited\n")
    db = sqlite3.connect(home / "state" / "stagectl.db")
    db.execute("INSERT INTO reports (kind, sha256, signed, generated_at) VALUES ('x', 'h', 0, 't')")
    db.commit()
    db.close()
    result = run(["init", "--force", "--json"])
    assert result.exit_code == 0
    assert result.json()["config"]["overwritten"] == PACKAGED
    core = home / "config" / "core.yaml"
    assert core.read_bytes() == (defaults_dir() / "core.yaml").read_bytes()
    db = sqlite3.connect(home / "state" / "stagectl.db")
    assert db.execute("SELECT count(*) FROM reports").fetchone()[0] == 1


def test_init_force_replaces_each_config_whole_never_rewrites_it_in_place(
    run: Run, home: Path
) -> None:
    """A config is written beside and renamed over the old one, so an interrupted init
    leaves the old file or the new one, never a cut one: a hard link made to the old file
    keeps its bytes."""
    assert run(["init"]).exit_code == 0
    core = home / "config" / "core.yaml"
    core.write_text("edited: true\n")
    old = home / "core-before.yaml"
    os.link(core, old)
    assert run(["init", "--force"]).exit_code == 0
    assert old.read_text() == "edited: true\n"
    assert core.read_bytes() == (defaults_dir() / "core.yaml").read_bytes()
    assert [p.name for p in (home / "config").iterdir() if p.name.endswith(".tmp")] == []


def test_init_takes_a_directory_argument(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "desk" / "home"
    result = run(["init", target, "--json"])
    assert result.exit_code == 0
    assert result.json()["state"] == str(target / "state" / "stagectl.db")
    assert (target / "state" / "stagectl.db").is_file()


def test_init_into_a_file_is_an_input_error(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    result = run(["init", target])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert str(target) in result.stderr


def test_init_over_a_state_file_that_is_not_a_database_exits_2(run: Run, home: Path) -> None:
    (home / "state").mkdir()
    (home / "state" / "stagectl.db").write_text("not sqlite at all\n" * 20)
    result = run(["init"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"stagectl: {home / 'state' / 'stagectl.db'}: not a SQLite")
    assert "Traceback" not in result.stderr


def test_init_on_a_locked_state_exits_3(run: Run, home: Path) -> None:
    (home / "state").mkdir()
    holder = sqlite3.connect(home / "state" / "stagectl.db", isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE lock_holder (x INTEGER)")
    try:
        result = run(["init"], env={"STAGECTL_BUSY_TIMEOUT_MS": "50"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 3
    assert "locked" in result.stderr


def test_init_creates_the_artifacts_dir_the_homes_stage3_yaml_names(run: Run, home: Path) -> None:
    (home / "config").mkdir()
    stage3 = (defaults_dir() / "stage3.yaml").read_text()
    (home / "config" / "stage3.yaml").write_text(
        stage3.replace("dir: artifacts/stage3", "dir: desk/micro-tests")
    )
    result = run(["init", "--json"])
    assert result.exit_code == 0, result.stderr
    assert "desk/micro-tests" in result.json()["created_dirs"]
    assert (home / "desk" / "micro-tests").is_dir()
    assert not (home / "artifacts" / "stage3").exists()


def test_init_with_a_broken_stage3_yaml_still_creates_the_home_and_says_so(
    run: Run, home: Path
) -> None:
    (home / "config").mkdir()
    (home / "config" / "stage3.yaml").write_text("duration_h: -1\n")
    result = run(["init"])
    assert result.exit_code == 0, result.stderr
    assert (home / "state" / "stagectl.db").is_file()
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "stage3.yaml" in notes[0] and "not created" in notes[0]
