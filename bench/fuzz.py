"""The MUC fuzz of ``tests/abuse/test_fuzz.py``, on random seeds, for as long as asked.

CI runs a fixed, derandomised set of examples; this keeps drawing new ones::

    .venv/bin/python -m bench.fuzz --minutes 10
    .venv/bin/python -m bench.fuzz --minutes 1 --seed 1234   # replay a run

Each batch runs ``--batch`` examples on a seed of its own (printed, so that a
failure can be replayed with ``--seed``). The first failing example is shrunk
by Hypothesis and printed with the stanzas that led to it, and the command
exits 1; otherwise it prints how many examples and steps passed and exits 0.
Nothing here opens a socket: the component runs in memory.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import warnings

from hypothesis import HealthCheck, given, seed, settings

from tests.abuse.test_fuzz import Scenario, run_scenario, scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to keep drawing examples (default 10)")
    parser.add_argument("--batch", type=int, default=200, help="examples per seed (default 200)")
    parser.add_argument("--steps", type=int, default=60, help="the most steps in one example (default 60)")
    parser.add_argument("--seed", type=int, default=None, help="the first batch's seed (default: random)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="hypothesis")
    deadline = time.monotonic() + args.minutes * 60
    examples = steps = batches = 0
    next_seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)

    def one(scenario: Scenario) -> None:
        nonlocal examples, steps
        run_scenario(scenario)
        examples += 1
        steps += len(scenario.steps)

    while time.monotonic() < deadline:
        batch_seed, next_seed = next_seed, random.Random(next_seed).randrange(1 << 32)
        test = seed(batch_seed)(
            settings(
                max_examples=args.batch,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )(given(scenarios(args.steps))(one))
        )
        print(f"batch {batches + 1}: seed {batch_seed}", flush=True)
        try:
            test()
        except Exception as error:
            print(f"\nFAILED on seed {batch_seed} (replay: python -m bench.fuzz --minutes 1 --seed {batch_seed})")
            print(error)
            return 1
        batches += 1
    print(f"passed: {examples} examples ({steps} steps) in {batches} batches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
