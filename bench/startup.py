"""Start-up of the commands CI runs: `mapsync validate` and `mapsync test` on the reference workspace.

    .venv/bin/python -m bench.startup

Each command runs as a user runs it (a fresh process, `.pyc` files cached), alternating with a bare
`python -c pass` as the baseline, ROUNDS times; the medians count. The target (issue 15) is an absolute
one, under 150 ms each, so the baseline says how fast this machine starts Python at all: on a machine
where bare Python takes much more than 10 ms, read the difference (command - bare) rather than the total.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROUNDS = 15
TARGET_MS = 150.0
REPO = Path(__file__).resolve().parent.parent
COMMANDS = {
    "bare python": [sys.executable, "-c", "pass"],
    "validate": [sys.executable, "-m", "mapsync", "validate"],
    "test": [sys.executable, "-m", "mapsync", "test"],
}


def _once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:])} failed: {done.stdout.decode()[-500:]} {done.stderr.decode()[-500:]}")
    return elapsed * 1000


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as a user's shell has it
    for argv in COMMANDS.values():
        _once(argv, env)  # compiles and caches the .pyc files, warms the page cache
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(rounds):
        for name, argv in COMMANDS.items():
            times[name].append(_once(argv, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    figures: dict[str, Any] = {"rounds": rounds}
    for name, median in medians.items():
        figures[f"{name}_ms"] = round(median, 1)
    for name in ("validate", "test"):
        figures[f"{name}_over_bare_ms"] = round(medians[name] - medians["bare python"], 1)
        figures[f"{name}_under_target"] = medians[name] < TARGET_MS
    return figures


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value}")
