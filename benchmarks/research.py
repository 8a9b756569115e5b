"""Wall time of a full walk-forward and a 10-fold/2-test CPCV on the bundled data.

Both include loading the config and the data, building the 9-candidate grid and the
selection in every fold/split (target: under 10 s each on 2 cores). The figures are the
median of ``--repeat`` runs in one process (the first run also pays the imports).

Run: ``python benchmarks/research.py [--repeat N] [--data DIR]``. Prints the figures;
not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from summary import Row, add_option, emit

from stagectl.config.home import Home
from stagectl.services.research import cpcv as research_cpcv
from stagectl.services.research import walk_forward as research_walk_forward


def _timed(label: str, action: Callable[[], Any], repeat: int) -> float:
    """Print the median, min and max of ``repeat`` runs; return the median."""
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    print(
        f"{label}: median {statistics.median(seconds):.2f} s, min {min(seconds):.2f} s, "
        f"max {max(seconds):.2f} s over {repeat} runs"
    )
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None)
    add_option(parser)
    args = parser.parse_args()
    home = Home.resolve(Path(tempfile.mkdtemp(prefix="stagectl-bench-")))
    wf = research_walk_forward.WalkForwardRequest(data_dir=args.data)
    cpcv = research_cpcv.CpcvRequest(data_dir=args.data, folds=10, test_folds=2)
    result = research_walk_forward.run(wf, home=home)
    print(f"walk-forward: {len(result.folds)} folds x {len(result.candidates)} candidates")
    wf_s = _timed(
        "walk-forward (train 120d, purge 5d, test 30d, grid)",
        lambda: research_walk_forward.run(wf, home=home),
        args.repeat,
    )
    split = research_cpcv.run(cpcv, home=home)
    print(
        f"cpcv: {len(split.splits)} splits, {split.body['settings']['paths']} paths, "
        f"PBO over {split.body['pbo']['splits']} CSCV splits"
    )
    cpcv_s = _timed(
        "cpcv (N=10, K=2, purge 5d, embargo 1d, grid + PBO)",
        lambda: research_cpcv.run(cpcv, home=home),
        args.repeat,
    )
    if args.summary_json:
        emit(
            [
                Row("walk-forward, bundled data", wf_s, "s", target="< 10 s", met=wf_s < 10),
                Row("cpcv N=10 K=2, bundled data", cpcv_s, "s", target="< 10 s", met=cpcv_s < 10),
            ]
        )


if __name__ == "__main__":
    main()
