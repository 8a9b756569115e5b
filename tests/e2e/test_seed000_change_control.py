"""Seed 000's change control, step by step: "a change takes effect only after the
config is updated and the compliance report is signed"."""

from __future__ import annotations

from tests.e2e.conftest import SIGNER, Operator

# the blackout scenario at a calm time breaches nothing on the bundled data, so the
# exit code speaks only of the verification and the publication
STRESS = ("stress-lab", "--scenario", "blackout", "--now", "2026-05-01T12:00Z")


def test_a_threshold_change_blocks_publication_until_restored_and_signed(
    operator: Operator,
) -> None:
    core = operator.home / "config" / "core.yaml"
    approved = core.read_text()

    # 1. someone loosens a governed threshold (spread 45 -> 60 bps)
    assert "spread_bps: 45" in approved
    core.write_text(approved.replace("spread_bps: 45", "spread_bps: 60", 1))
    audit = operator("verify-thresholds", "--json", expect=1)
    failed = [c["id"] for c in audit.json()["body"]["checks"] if c["status"] == "fail"]
    assert failed == ["stress_lab.thresholds.spread_bps"], failed

    # 2. no publication from the changed config: stress-lab refuses and writes nothing
    blocked = operator(*STRESS, "--out", "reports/stress.json", expect=1)
    assert blocked.stdout.startswith("BLOCKED"), blocked
    assert "nothing was published" in blocked.stderr, blocked
    assert not (operator.home / "reports" / "stress.json").exists()

    # 3. restore the approved value: the audit passes and a dry look works, but
    #    publication still needs the signed compliance report
    core.write_text(approved)
    operator("verify-thresholds")
    operator(*STRESS)
    unsigned = operator(*STRESS, "--out", "reports/stress.json", expect=1)
    assert "verify-thresholds --out" in unsigned.stderr, unsigned
    assert not (operator.home / "reports" / "stress.json").exists()

    # 4. the compliance sign-off, then publication; both verify
    operator("verify-thresholds", "--out", "reports/compliance.json", "--signed-off-by", SIGNER)
    operator("report", "verify", "reports/compliance.json")
    operator(*STRESS, "--out", "reports/stress.json")
    verdict = operator("report", "verify", "reports/stress.json", "--json").json()
    assert verdict["valid"] is True, verdict

    # 5. any later edit invalidates the sign-off again
    core.write_text(approved + "\n# touched\n")
    operator(*STRESS, "--out", "reports/stress-2.json", expect=1)
