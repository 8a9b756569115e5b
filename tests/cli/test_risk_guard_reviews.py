"""`stagectl risk-guard` names the re-evaluation steps it made among the directives."""

from __future__ import annotations

import json
from pathlib import Path

from stagectl.config.home import Home
from tests.conftest import Run
from tests.integration.test_directive_reevaluation import PEAK, _home, _seed, at_hour, steps_of


def test_risk_guard_lists_a_review_step_with_the_directives(run: Run, home: Path) -> None:
    guard_home: Home = _home(home)
    _seed(guard_home, steps_of({PEAK: 3.0, PEAK + 24: 1.0}))
    issued = run(["risk-guard", "--now", at_hour(PEAK).isoformat()])
    assert issued.exit_code == 1 and issued.stdout.splitlines()[-1].endswith("REDUCE_RISK_50")
    reviewed = run(["risk-guard", "--now", at_hour(PEAK + 24).isoformat()])
    assert reviewed.exit_code == 0, reviewed.stderr
    assert reviewed.stdout.splitlines()[-1].endswith("directives REDUCE_RISK_50 (recovered)")
    later = run(["risk-guard", "--json", "--now", at_hour(PEAK + 48).isoformat()])
    [step] = json.loads(later.stdout)["body"]["state"]["directives"]
    assert (step["step"], step["multiplier"], step["state"]) == ("recovered", 1.0, "revoked")
