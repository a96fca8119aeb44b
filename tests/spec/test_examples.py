"""run_examples (`mapsync test`): every example of every mapping, forward and backward."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mapsync.mapping.examples import ExampleResult, run_examples
from mapsync.spec.loader import load_workspace

REPO = Path(__file__).parents[2]


def copy_workspace(tmp_path: Path) -> Path:
    shutil.copy(REPO / "mapsync.yaml", tmp_path / "mapsync.yaml")
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    return tmp_path


def test_the_reference_examples_pass() -> None:
    results = list(run_examples(load_workspace(REPO / "mapsync.yaml", env={})))
    assert len(results) == 12  # 6 examples, both ways
    failed = [r.diff() for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    assert {r.direction for r in results} == {"forward", "backward"}


def test_results_point_at_the_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(copy_workspace(tmp_path))
    results = list(run_examples(load_workspace("mapsync.yaml", env={})))
    first = next(r for r in results if r.dataflow == "kunde-customer")
    assert (first.file, first.line, first.example) == ("mappings/kunde-customer.yaml", 32,
                                                        "a customer with both addresses")


def test_a_wrong_example_fails_with_a_unified_diff(tmp_path: Path) -> None:
    root = copy_workspace(tmp_path)
    path = root / "mappings" / "avdeling-customer.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("      name: Salg Oslo", "      name: Salg Bergen"),
                    encoding="utf-8")
    results = list(run_examples(load_workspace(root / "mapsync.yaml", env={})))
    failed = [r for r in results if not r.passed]
    assert [(r.example, r.direction) for r in failed] == [
        ("a department with every property", "forward"), ("a department with every property", "backward")]
    diff = failed[0].diff()
    assert diff.startswith("--- expected\n+++ actual\n@@")
    assert '-  "name": "Salg Bergen",' in diff
    assert '+  "name": "Salg Oslo",' in diff
    assert '-  "Navn": "Salg Oslo",' in failed[1].diff()


def test_a_mapping_error_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    root = copy_workspace(tmp_path)
    path = root / "mappings" / "prosjekt-project.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        'StartDato: "2024-03-01T00:00:00+01:00"', 'StartDato: "01.03.2024"'), encoding="utf-8")
    results = list(run_examples(load_workspace(root / "mapsync.yaml", env={})))
    failed = [r for r in results if not r.passed]
    assert failed[0].direction == "forward"
    assert failed[0].error.startswith("mapping failed: StartDato: expected a date")
    assert failed[0].diff() == failed[0].error


def test_a_missing_link_is_reported(tmp_path: Path) -> None:
    root = copy_workspace(tmp_path)
    path = root / "mappings" / "prosjekt-project.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("kunde-customer: {K10001: c-000001}",
                                                             "kunde-customer: {K10002: c-000001}"), encoding="utf-8")
    failed = [r for r in run_examples(load_workspace(root / "mapsync.yaml", env={})) if not r.passed]
    assert len(failed) == 2
    assert "'K10001' is not linked yet" in failed[0].error
    # Backward, c-000001 is linked, but to another Kunde: a plain difference.
    assert not failed[1].error
    assert '+  "KundeId": "K10002",' in failed[1].diff()


def test_one_way_examples(tmp_path: Path) -> None:
    root = copy_workspace(tmp_path)
    path = root / "mappings" / "kunde-customer.yaml"
    text = path.read_text(encoding="utf-8").replace(
        "  - name: an inactive customer with nothing but a name\n",
        "  - name: an inactive customer with nothing but a name\n    direction: forward\n")
    path.write_text(text, encoding="utf-8")
    results = [r for r in run_examples(load_workspace(root / "mapsync.yaml", env={}))
               if r.example == "an inactive customer with nothing but a name"]
    assert [r.direction for r in results] == ["forward"]


def test_backward_ignores_source_fields_no_row_writes() -> None:
    result = ExampleResult("d", "e", "backward", "f", 1, {"Navn": "x"}, {"Navn": "x"})
    assert result.passed
    assert result.diff() == ""
