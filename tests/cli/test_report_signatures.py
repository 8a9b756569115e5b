"""Every kind of signed report the CLI writes is signed whole.

Each kind is produced once for the module through the real command (in one
seeded home with a signing key); the property tests then change the report in
memory and verify it in memory, so hundreds of examples per kind stay cheap.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stagectl.errors import InputError
from stagectl.reports import (
    SigningKey,
    canonical_json,
    derive_key_id,
    parse_report,
    verify_envelope,
)
from tests.conftest import REPO_ROOT, TEST_HMAC_KEY, invoke_cli, isolate_home
from tests.integration.paper_seed import Seed, write
from tests.unit.test_canonical_json import json_scalars, json_text

KEY = SigningKey(secret=TEST_HMAC_KEY.encode(), key_id=derive_key_id(TEST_HMAC_KEY.encode()))
SIGNER = "Ada Lovelace"
CALM = "2026-05-01T12:00Z"  # the bundled data: no baseline breach then (test_stress_lab.py)

# kind -> the command producing it; `--out FILE` writes it, else `--json` prints it.
# verify-thresholds comes first: its report is the sign-off market-intel and
# stress-lab need to publish.
COMMANDS: dict[str, list[str]] = {
    "verify-thresholds": [
        "verify-thresholds",
        "--out",
        "reports/compliance.json",
        "--signed-off-by",
        SIGNER,
    ],
    "market-intel": ["market-intel", "--out", "market-intel.json"],
    "funding-scan": ["funding-scan", "--out", "funding-scan.json"],
    "daily": ["daily", "--out", "daily.json"],
    "stress-lab": ["stress-lab", "--scenario", "blackout", "--now", CALM, "--out", "stress.json"],
    "backtest": ["backtest", "--start", "2025-10-01", "--end", "2025-12-31", "--out", "bt.json"],
    "backtest-grid": [
        "backtest",
        "--grid",
        str(REPO_ROOT / "docs" / "examples" / "backtest_grid.yaml"),
        "--out",
        "grid.json",
    ],
    "audit-strategy": ["audit-strategy", "--out", "audit.json"],
    "walk-forward": ["walk-forward", "--train", "60d", "--test", "60d", "--fixed", "--json"],
    "cpcv": ["cpcv", "--folds", "4", "--test-folds", "1", "--fixed", "--json"],
    "risk-guard": ["risk-guard", "--dry-run", "--out", "guard.json"],
    "weekly-review": ["risk-guard", "--weekly", "--dry-run", "--out", "weekly.json"],
    "paper-gate": ["paper-gate", "--out", "paper-gate.json"],
    "risk-guard-replay": [
        "risk-guard",
        "--replay",
        "--replay-start",
        "2025-06-01",
        "--replay-end",
        "2025-09-30",
        "--breakers",
        "--out",
        "replay.json",
    ],
}
KINDS = list(COMMANDS)
NOT_REPORTS = {"run-live"}  # a run's kind in the state's runs table, not a report kind


@dataclass(frozen=True)
class Produced:
    """One report as the command wrote it, parsed, and its tree's paths."""

    raw: bytes
    document: dict[str, Any]
    sorted_json: str  # the oracle of "the same document": see _sorted_json
    token_bytes: list[int]  # the positions of letters and digits (numbers, names, text)
    objects: list[tuple[Any, ...]]  # the path of every JSON object, the root included
    members: list[tuple[Any, ...]]  # the path of every object member and array item


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Produced]:
    """Every kind, produced once through the CLI in a home holding a finished paper run."""
    root = tmp_path_factory.mktemp("signed") / "home"
    root.mkdir()
    reports: dict[str, Produced] = {}
    with pytest.MonkeyPatch.context() as patch:
        isolate_home(root, patch)
        patch.setenv("STAGECTL_HMAC_KEY", TEST_HMAC_KEY)
        end = datetime(2024, 11, 11, tzinfo=UTC)
        write(
            root / "state" / "stagectl.db", Seed(start=datetime(2024, 10, 1, tzinfo=UTC), end=end)
        )
        for kind, args in COMMANDS.items():
            result = invoke_cli(args)
            assert result.exit_code in (0, 1), f"{kind}: {result.stderr}"
            raw = (
                (root / args[args.index("--out") + 1]).read_bytes()
                if "--out" in args
                else result.stdout.encode()
            )
            document = json.loads(raw)
            assert document["kind"] == kind
            tokens = [i for i, byte in enumerate(raw) if chr(byte).isalnum()]
            reports[kind] = Produced(
                raw, document, _sorted_json(document), tokens, *_paths(document)
            )
    return reports


def _paths(document: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    objects: list[tuple[Any, ...]] = []
    members: list[tuple[Any, ...]] = []

    def walk(value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, dict):
            objects.append(path)
            children: Iterator[tuple[Any, Any]] = iter(value.items())
        elif isinstance(value, list):
            children = iter(enumerate(value))
        else:
            return
        for step, child in children:
            members.append((*path, step))
            walk(child, (*path, step))

    walk(document, ())
    return objects, members


def _sorted_json(document: Any) -> str:
    """An oracle independent of the canonical module: the standard library's JSON with
    sorted keys and no whitespace is the same text exactly when the canonical bytes are
    (tests/unit/test_canonical_json.py shows they agree)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def verifies(raw: bytes) -> bool:
    """What `stagectl report verify` decides for these bytes, in memory: True only for
    exit 0 (an unreadable file, exit 2, fails verification too)."""
    try:
        envelope = parse_report(raw, Path("report.json"))
    except InputError:
        return False
    return verify_envelope(envelope, KEY).valid


def _copied_along(document: dict[str, Any], path: tuple[Any, ...]) -> tuple[Any, Any]:
    """A copy of ``document`` sharing everything but the containers on ``path`` (cheaper
    than a deep copy), and the copy's container at the end of ``path``."""
    root = node = copy.copy(document)
    for step in path:
        node[step] = copy.copy(node[step])
        node = node[step]
    return root, node


def test_every_kind_the_cli_publishes_is_produced_here() -> None:
    services = REPO_ROOT / "src" / "stagectl" / "services"
    declared = {
        match.group(1)
        for source in services.rglob("*.py")
        for match in re.finditer(r'^KIND = "([^"]+)"$', source.read_text(), re.MULTILINE)
    }
    assert declared - NOT_REPORTS == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_verifies_unchanged_and_is_signed_whole(
    produced: dict[str, Produced], kind: str
) -> None:
    report = produced[kind]
    assert verifies(report.raw)
    assert report.document["schema"] == "stagectl.report/v2"
    assert "signed_sections" not in report.document
    assert sorted(report.document["signature"]) == ["alg", "key_id", "value"]


@pytest.mark.parametrize("kind", KINDS)
def test_any_byte_edit_that_changes_the_parsed_report_fails_verification(
    produced: dict[str, Produced], kind: str
) -> None:
    """Replace, insert or delete one byte anywhere: verification passes exactly when the
    file still parses to the same canonical document (whitespace, say)."""
    report = produced[kind]
    raw = report.raw
    # Letters and digits half the time: an edit there mostly still parses.
    positions = _one_of(report.token_bytes) | st.integers(0, len(raw) - 1)
    replacements = st.sampled_from(b'0123456789abcdefxyz -+.eE"\\{}[],:\n') | st.integers(0, 255)

    @settings(max_examples=100)
    @given(positions, replacements, st.sampled_from(["replace", "insert", "delete"]))
    def edited(position: int, byte: int, edit: str) -> None:
        tail = position + (edit != "insert")
        mutated = raw[:position] + (b"" if edit == "delete" else bytes([byte])) + raw[tail:]
        try:
            same = _sorted_json(json.loads(mutated.decode())) == report.sorted_json
        except ValueError:  # not JSON any more (UnicodeDecodeError, JSONDecodeError)
            same = False
        assert verifies(mutated) is same

    edited()


# What is added or put in place of a value: small, so drawing it stays cheap.
new_values = (
    json_scalars
    | st.lists(json_scalars, max_size=3)
    | st.dictionaries(json_text, json_scalars, max_size=3)
)


def _one_of(items: list[Any]) -> st.SearchStrategy[Any]:
    """``st.sampled_from(items)`` without hashing thousands of items into a label on
    every example."""
    return st.integers(0, len(items) - 1).map(items.__getitem__)


def _different(value: Any) -> st.SearchStrategy[Any]:
    old = canonical_json(value)
    return new_values.filter(lambda other: canonical_json(other) != old)


@pytest.mark.parametrize("kind", KINDS)
def test_adding_removing_or_changing_anything_fails_verification(
    produced: dict[str, Produced], kind: str
) -> None:
    """Anywhere in the envelope: the top level, any body section, inputs, the signature."""
    report = produced[kind]

    @settings(max_examples=100)
    @given(st.data())
    def changed(data: st.DataObject) -> None:
        change = data.draw(st.sampled_from(["add", "remove", "replace"]), label="change")
        if change == "add":
            path = data.draw(_one_of(report.objects), label="object")
            document, target = _copied_along(report.document, path)
            name = data.draw(json_text.filter(lambda key: key not in target), label="key")
            target[name] = data.draw(new_values, label="value")
        else:
            path = data.draw(_one_of(report.members), label="member")
            document, parent = _copied_along(report.document, path[:-1])
            step = path[-1]
            if change == "remove":
                del parent[step]
            else:
                parent[step] = data.draw(_different(parent[step]), label="value")
        assert not verify_envelope(document, KEY).valid

    changed()


def _reordered(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        names = list(value)
        rng.shuffle(names)
        return {name: _reordered(value[name], rng) for name in names}
    if isinstance(value, list):
        return [_reordered(item, rng) for item in value]
    return value


@pytest.mark.parametrize("kind", KINDS)
def test_key_order_and_whitespace_do_not_matter(produced: dict[str, Produced], kind: str) -> None:
    report = produced[kind]

    @settings(max_examples=10)
    @given(st.integers(0, 2**32), st.sampled_from([None, 0, 1, 4, "\t"]))
    def reformatted(seed: int, indent: int | str | None) -> None:
        document = _reordered(report.document, random.Random(seed))
        assert verifies(json.dumps(document, indent=indent, ensure_ascii=False).encode())

    reformatted()
