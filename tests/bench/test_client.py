"""The hand-written baseline client of bench/client.py, and the comparison harness of bench/compare.py."""

from __future__ import annotations

from pathlib import Path

from bench import compare
from bench.client import ClientSettings, sync
from mapsync.sandbox import Sandbox, SeedSize


def _settings(state: Path) -> ClientSettings:
    return ClientSettings("http://tidsbanken", "sandbox-tb-key", "sandbox-subscription-key", "http://custompms",
                          "sandbox-pms-token", state, concurrency=4, page_size=7)


def _writes(sandbox: Sandbox) -> dict[str, int]:
    found: dict[str, int] = {}
    for (method, _path), n in sandbox.custompms.requests.items():
        if method != "GET":
            found[method] = found.get(method, 0) + n
    return found


def test_client_creates_then_writes_only_what_changed(tmp_path: Path) -> None:
    sandbox = Sandbox(seed=SeedSize(avdelinger=3, kunder=12, prosjekter=25), rng_seed=1)
    transports = (sandbox.tidsbanken.transport(), sandbox.custompms.transport())
    settings = _settings(tmp_path / "pairs.db")

    first = sync(settings, transports)
    assert [first[f].created for f in ("avdeling", "kunde", "prosjekt")] == [3, 12, 25]
    assert _writes(sandbox) == {"POST": 40}
    kunde = sandbox.tidsbanken.records("Kunde")[0]
    customer = next(c for c in sandbox.custompms.records("customers") if c["name"] == kunde["Navn"])
    assert customer["kind"] == "customer"
    assert customer["organization_number"] == (kunde["Organisasjonsnummer"] or None)

    sandbox.custompms.reset_counts()
    sync(settings, transports)
    assert _writes(sandbox) == {}  # the one-millisecond overlap re-reads records, the digest skips them

    sandbox.tidsbanken.edit("Kunde", kunde["Id"], Navn="Endret AS")
    sync(settings, transports)
    assert _writes(sandbox) == {"PATCH": 1}
    assert sandbox.custompms.get("customers", customer["id"])["name"] == "Endret AS"  # type: ignore[index]
    assert len(sandbox.custompms.records("customers")) == 15  # the id pair was kept: no second create


def test_compare_runs_both_tools_to_the_same_records() -> None:
    rows = compare.run_condition(60, "bulk", latency=0.0)
    assert [row["step"] for row in rows] == [name for name, _ in compare.STEPS]
    assert all(row["same_records"] for row in rows), [(row["step"], row["same_records"]) for row in rows]
    initial = rows[0]
    assert initial["client"]["methods"]["POST"] == initial["mapsync"]["methods"]["POST"] == 60
    changed = rows[3]
    assert changed["changed"] > 0
    assert changed["client"]["methods"].get("PATCH") == changed["changed"]
    report = "\n".join(compare.markdown({"sizes": {60: {"bulk": rows}}}))
    assert "### 60 records, loaded in bulk" in report and "| 1% changed |" in report
    summary = compare.summary_rows({"sizes": {60: {"bulk": rows}}})
    assert len(summary) == 5 and summary[0].startswith("| initial sync time / hand-written client, 60 records")
    assert "(settled)" in summary[3] or "changed)" in summary[3]  # after the read-back of own writes


def test_make_bench_keeps_the_hand_measured_part_of_the_page(tmp_path: Path) -> None:
    from bench.__main__ import KEPT_MARK, _kept

    page = tmp_path / "performance.md"
    page.write_text(f"# Performance\n\nold figures\n\n{KEPT_MARK}\n\n## Measured once\n\n| a | b |\n", encoding="utf-8")
    assert _kept(page) == [KEPT_MARK, "", "", "## Measured once", "", "| a | b |"]
    assert _kept(tmp_path / "missing.md") == [KEPT_MARK, ""]


def test_startup_bench_reports_medians_against_bare_python() -> None:
    from bench.startup import run

    figures = run(rounds=1)
    assert figures["validate_ms"] > figures["bare python_ms"] > 0
    assert abs(figures["test_over_bare_ms"] - (figures["test_ms"] - figures["bare python_ms"])) < 0.2
