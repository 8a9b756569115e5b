"""Fixtures of the CLI tests beyond the shared ones in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Run

SIGNER = "Ada Lovelace"


@pytest.fixture
def signed_off(run: Run, home: Path, hmac_key: str) -> Path:
    """core.yaml's compliance sign-off in the home's reports/, as an operator writes it."""
    path = home / "reports" / "compliance-test.json"
    result = run(["verify-thresholds", "--out", path, "--signed-off-by", SIGNER])
    assert result.exit_code == 0, result.stderr
    return path
