"""Where an initial sync spends its CPU: cProfile of every thread (CPU time, not wall time).

    .venv/bin/python -m bench.compare --profile 10000 [--tool client]

The emulators of bench/compare.py serve spread-out data in a child process; the sync runs in this process
with a profiler per thread (threads start one on their first event), merged at the end. Printed: CPU share
by module, by function (own time), and mapsync's own functions by cumulative time. cProfile's overhead
grows with the number of calls, so shares lean towards call-heavy code; compare them between tools.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.compare import CONCURRENCY, LATENCY, PAGE_SIZE, _serve
from bench.sync import _workspace


def profile(records: int, tool: str = "mapsync", top: int = 30) -> None:
    """cProfile of a tool's initial sync (every thread, CPU time), in this process, on spread-out data."""
    import cProfile
    import pstats
    import threading

    from bench.client import ClientSettings, sync
    from mapsync.spec.loader import load_workspace
    from mapsync.sync.runner import SyncRun

    profiles: list[cProfile.Profile] = []

    def start_thread_profile(*_: Any) -> None:  # the first event of each new thread swaps in a profiler
        profiler = cProfile.Profile(time.thread_time)  # CPU of this thread, not the wall time it waits
        profiles.append(profiler)
        profiler.enable()

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(records, "spread", LATENCY, child), daemon=True)
    server.start()
    try:
        envs = parent.recv()
        with tempfile.TemporaryDirectory(prefix="mapsync-profile-") as tmp:
            workspace = load_workspace(_workspace(Path(tmp), envs["mapsync"], CONCURRENCY), env={})
            settings = ClientSettings.from_env(envs["client"], Path(tmp) / "client.db", concurrency=CONCURRENCY,
                                               page_size=PAGE_SIZE)
            main = cProfile.Profile(time.thread_time)
            threading.setprofile(start_thread_profile)
            main.enable()
            if tool == "client":
                sync(settings)
            else:
                with SyncRun(workspace) as sync_run:
                    sync_run.apply()
            main.disable()
            threading.setprofile(None)
    finally:
        parent.send(("stop",))
        server.join(30)
    _print_profile(pstats.Stats(main, *profiles), top)


def _print_profile(stats: Any, top: int) -> None:
    """CPU share by module, then by function (own time, every thread)."""
    entries = stats.stats.items()  # (file, line, function) -> (calls, primitive calls, own, cumulative, callers)
    total = sum(own for (_, _, own, _, _) in stats.stats.values()) or 1.0
    by_module: dict[str, float] = {}
    for (file, _line, _name), (_, _, own, _, _) in entries:
        module = "builtins (C)" if file == "~" else file.split("site-packages/")[-1].split("/engine/")[-1]
        by_module[module] = by_module.get(module, 0.0) + own
    print(f"CPU seen by the profiler: {total:.1f} s (every thread)\n\nby module:")
    for module, own in sorted(by_module.items(), key=lambda item: -item[1])[:top]:
        print(f"  {own / total:6.1%}  {own:7.2f} s  {module}")
    print("\nby function (own time, calls):")
    ranked = sorted(entries, key=lambda item: -item[1][2])[:top]
    for (file, line, name), (_, calls, own, cumulative, _) in ranked:
        where = file.split("site-packages/")[-1].split("/engine/")[-1]
        print(f"  {own / total:6.1%}  {own:7.2f} s  cum {cumulative:7.2f} s  {calls:>8}  {where}:{line}({name})")
    print("\nmapsync's own functions by cumulative time (what they call included):")
    ours = sorted(((key, value) for key, value in entries if "/mapsync/" in key[0] or "/bench/" in key[0]),
                  key=lambda item: -item[1][3])[:top]
    for (file, line, name), (_, calls, own, cumulative, _) in ours:
        where = file.split("/engine/")[-1].split("/main/")[-1]
        print(f"  {cumulative / total:6.1%}  cum {cumulative:7.2f} s  own {own:6.2f} s  {calls:>8}  "
              f"{where}:{line}({name})")
