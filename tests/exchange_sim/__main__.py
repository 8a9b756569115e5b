"""Run the exchange simulator by hand: ``python -m tests.exchange_sim --port 8765``."""

from __future__ import annotations

import argparse
import time

from tests.exchange_sim import API_KEY, API_SECRET, DEFAULT_START, ExchangeSim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--start", default=DEFAULT_START, help="the simulated clock at start")
    args = parser.parse_args()
    sim = ExchangeSim(port=args.port, start=args.start).start()
    print(f"exchange simulator on {sim.base_url} (Ctrl-C stops it)")
    print(f"STAGECTL_EXCHANGE_API_KEY={API_KEY} STAGECTL_EXCHANGE_API_SECRET={API_SECRET}")
    print(f"advance the clock: curl -X POST '{sim.base_url}/_sim/advance?bars=1'")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    main()
