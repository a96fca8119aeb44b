"""Connector listing throughput and memory: all Kunder of a seeded Tidsbanken emulator, page size 500.

    .venv/bin/python -m bench.connectors

The emulator runs in a child process, so its memory and CPU are not this process's. Each size is
listed twice through the connector and twice through a bare httpx `$skip` loop (the baseline, no
connector logic): once for speed, once under tracemalloc for the peak Python memory of the listing.
`run()` returns the figures for bench/__main__.py.
"""

from __future__ import annotations

import multiprocessing
import time
import tracemalloc
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import httpx

from mapsync.connectors import create_connector

SIZES = (10_000, 100_000)
PAGE_SIZE = 500
FLAT_MEMORY_RATIO = 1.5


def _serve(kunder: int, pipe: Connection) -> None:
    """Child process: seed and serve the emulators until the parent says stop."""
    from mapsync.sandbox import Sandbox, SeedSize

    with Sandbox(seed=SeedSize(avdelinger=0, kunder=kunder, prosjekter=0), rng_seed=1) as sandbox:
        pipe.send(
            {
                "url": sandbox.tidsbanken.url,
                "api_key": sandbox.tidsbanken.api_key,
                "subscription_key": sandbox.tidsbanken.subscription_key,
            }
        )
        pipe.recv()


def _list_with_connector(server: dict[str, str]) -> int:
    settings: dict[str, Any] = {"type": "tidsbanken", "base_url": server["url"], "api_key": server["api_key"]}
    settings |= {"subscription_key": server["subscription_key"], "page_size": PAGE_SIZE}
    connector = create_connector("tidsbanken", settings)
    try:
        return sum(1 for _ in connector.list_changes("Kunde", None))
    finally:
        connector.close()


def _list_with_bare_httpx(server: dict[str, str]) -> int:
    headers = {
        "tb-key": server["api_key"],
        "Ocp-Apim-Subscription-Key": server["subscription_key"],
        "x-api-version": "3.0",
        "Accept": "application/json",
    }
    count = 0
    with httpx.Client(base_url=server["url"], headers=headers, timeout=60) as client:
        skip = 0
        while True:
            params: dict[str, str | int] = {"$top": PAGE_SIZE, "$skip": skip, "$select": "*"}
            page = client.get("/prosjekt/Kunde", params=params).json()["value"]
            count += len(page)
            skip += len(page)
            if len(page) < PAGE_SIZE:
                return count


def _measure(lister: Callable[[dict[str, str]], int], server: dict[str, str]) -> dict[str, float]:
    started = time.perf_counter()
    records = lister(server)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    try:
        lister(server)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"records": records, "seconds": seconds, "records_per_s": records / seconds, "peak_bytes": peak}


def _measure_size(kunder: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(kunder, child), daemon=True)
    process.start()
    try:
        server = parent.recv()
        return {
            "connector": _measure(_list_with_connector, server),
            "baseline": _measure(_list_with_bare_httpx, server),
        }
    finally:
        parent.send("stop")
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join()


def run(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    figures: dict[str, Any] = {"page_size": PAGE_SIZE, "sizes": {}}
    for kunder in sizes:
        result = _measure_size(kunder)
        connector, baseline = result["connector"], result["baseline"]
        if connector["records"] != kunder or baseline["records"] != kunder:
            raise RuntimeError(f"listed {connector['records']} / {baseline['records']} of {kunder} Kunder")
        result["speed_ratio"] = connector["records_per_s"] / baseline["records_per_s"]
        figures["sizes"][kunder] = result
    small, large = min(sizes), max(sizes)
    peak_small = figures["sizes"][small]["connector"]["peak_bytes"]
    peak_large = figures["sizes"][large]["connector"]["peak_bytes"]
    figures["memory_ratio"] = peak_large / peak_small
    figures["memory_flat"] = figures["memory_ratio"] < FLAT_MEMORY_RATIO
    return figures


def _print_table(figures: dict[str, Any]) -> None:
    print(f"Tidsbanken Kunde listing, page size {figures['page_size']} (emulator in a child process)")
    print(f"{'Kunder':>8} {'lister':<10} {'seconds':>8} {'records/s':>10} {'peak MiB':>9} {'vs baseline':>12}")
    for kunder, result in figures["sizes"].items():
        for lister in ("baseline", "connector"):
            row = result[lister]
            ratio = f"{result['speed_ratio']:.2f}x" if lister == "connector" else ""
            print(
                f"{kunder:>8} {lister:<10} {row['seconds']:>8.2f} {row['records_per_s']:>10.0f} "
                f"{row['peak_bytes'] / 2**20:>9.2f} {ratio:>12}"
            )
    verdict = "flat" if figures["memory_flat"] else "NOT flat"
    print(f"connector peak memory, largest / smallest size: {figures['memory_ratio']:.2f}x ({verdict})")


def main() -> None:
    _print_table(run())


if __name__ == "__main__":
    main()
