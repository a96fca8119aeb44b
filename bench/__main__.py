"""`make bench`: every benchmark in one run, each against its baseline, written to docs/performance.md."""

from __future__ import annotations

import importlib
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCHES = (
    ("mapping", "Mapping throughput: the declarative Kunde mapping against a hand-written function"),
    ("connectors", "Connector listing: Kunder through the connector against a bare httpx loop"),
    ("state", "State store operations on SQLite and PostgreSQL against the raw drivers"),
    ("sync", "Sync: initial run against the concurrency/latency limit; incremental runs against the initial"),
)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    return str(value)


def _section(title: str, figures: dict[str, Any]) -> list[str]:
    lines = [f"## {title}", "", "| figure | value |", "|---|---|"]
    for key, value in figures.items():
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            for sub, inner in value.items():
                lines.append(f"| {key} / {sub} | {_cell(inner)} |")
        else:
            lines.append(f"| {key} | {_cell(value)} |")
    return [*lines, ""]


def main(names: list[str]) -> int:
    chosen = [b for b in BENCHES if not names or b[0] in names]
    out = ["# Performance", "",
           f"Measured by `make bench` on {datetime.now(UTC):%Y-%m-%d} ({platform.python_implementation()} "
           f"{platform.python_version()}, {platform.machine()}). Every figure is a ratio against a baseline "
           "measured in the same process and run; absolute numbers move with the machine, ratios much less.",
           ""]
    for name, title in chosen:
        print(f"running bench.{name} ...", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        figures = module.run()
        print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
        out += _section(title, figures)
    target = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
    if names:
        print("\n".join(out))
        return 0
    target.write_text("\n".join(out), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
