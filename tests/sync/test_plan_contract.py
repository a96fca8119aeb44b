"""Issue 10, the plan is a contract, as a property: whatever was edited on either side since the last run,
`plan` lists exactly the writes `apply` then makes (same records, same kinds, same bodies) and its counts
are apply's report's counts."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sync_harness import REPO, Harness
from test_plan_edges import leaves

from mapsync.sandbox import Sandbox, SeedSize
from mapsync.sandbox._http import WriteLogEntry

SEED = SeedSize(avdelinger=2, kunder=4, prosjekter=6)
RESOURCE = {"Customer": "customers", "Project": "projects"}
TEXTS = st.sampled_from(["Nytt Navn AS", "", "974 760 673", "974760673", "N" * 250, "post@ny.no"])

Edit = tuple[Any, ...]
EDITS: st.SearchStrategy[Edit] = st.one_of(
    st.tuples(st.just("kunde"), st.integers(0, 9), st.sampled_from(["Navn", "Organisasjonsnummer", "Telefon",
                                                                     "Epost"]), TEXTS),
    st.tuples(st.just("prosjekt"), st.integers(0, 9), st.just("Navn"), TEXTS),
    st.tuples(st.just("customer"), st.integers(0, 9), st.sampled_from(["phone", "email", "website"]),
              st.sampled_from([None, "+47 22 00 00 00", "https://ny.no"])),
    st.tuples(st.just("new kunde"), st.integers(0, 9), st.sampled_from(["", "974 760 673", "914778271"]), TEXTS),
    st.tuples(st.just("delete kunde"), st.integers(0, 9)),
)


def make_harness(tmp: Path) -> Harness:
    ws = tmp / "ws"
    ws.mkdir()
    shutil.copy(REPO / "mapsync.yaml", ws / "mapsync.yaml")
    shutil.copytree(REPO / "mappings", ws / "mappings")
    h = Harness(Sandbox(seed=SEED, rng_seed=1), ws, f"sqlite:///{tmp}/state.db", tmp)  # served in process
    for connection in ("tidsbanken", "custompms"):
        h.set_connection(connection, rate_limit=10000)
    return h


def make_edit(h: Harness, edit: Edit, serial: int) -> None:
    tb, pms = h.sb.tidsbanken, h.sb.custompms
    kind, index = edit[0], edit[1]
    kunder = tb.records("Kunde")
    if kind == "kunde" and kunder:
        tb.edit("Kunde", kunder[index % len(kunder)]["Id"], **{edit[2]: edit[3]})
    elif kind == "prosjekt":
        prosjekter = tb.records("Prosjekt")
        tb.edit("Prosjekt", prosjekter[index % len(prosjekter)]["Id"], Navn=edit[3])
    elif kind == "customer":
        customers = [c for c in pms.records("customers") if c["kind"] == "customer"]
        pms.edit("customers", customers[index % len(customers)]["id"], **{edit[2]: edit[3]})
    elif kind == "new kunde":
        tb.put("Kunde", {"Id": f"K9{serial:04d}", "Navn": edit[3], "Organisasjonsnummer": edit[2]})
    elif kind == "delete kunde" and kunder:
        tb.remove("Kunde", kunder[index % len(kunder)]["Id"])


def mapping(h: Harness, dataflow: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((h.ws / "mappings" / f"{dataflow}.yaml").read_text(encoding="utf-8"))
    return data


def resolved(value: Any, created: dict[str, str]) -> Any:
    """A plan shows the id of a record it would create as "(new: <source id>)"; apply knows the real one."""
    if isinstance(value, str) and value.startswith("(new: "):
        return created[value[len("(new: "):-1]]
    return value


def flat(body: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in body.items():
        out |= flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


def assert_plan_was_performed(h: Harness, plan: dict[str, Any], report: dict[str, Any],
                              writes: list[WriteLogEntry]) -> None:
    assert all(w.status < 400 for w in writes), [w for w in writes if w.status >= 400]  # nothing refused
    created = {source: target for flow in plan["dataflows"] for source, target in h.links(flow).items()}
    expected_posts: Counter[str] = Counter()
    expected_patches: dict[str, dict[str, Any]] = {}
    expected_tb: dict[str, dict[str, Any]] = {}
    for flow, planned in plan["dataflows"].items():
        applied = report["dataflows"][flow]
        assert {k: applied[k] for k in planned["counts"]} == planned["counts"], flow
        spec = mapping(h, flow)
        resource = RESOURCE[spec["target"]["entity"]]
        source_field = {row["target"]: row["source"] for row in spec["properties"]}
        for action in planned["actions"]:
            changes = {p: resolved(c["new"], created) for p, c in action.get("target_changes", {}).items()}
            if action["action"] == "create":
                expected_posts[json.dumps((resource, spec.get("constants", {}) | changes), sort_keys=True)] += 1
            elif changes:
                expected_patches[f"/api/v1/{resource}/{action['target_id']}"] = changes
            if action.get("source_changes"):
                expected_tb[action["source_id"]] = {source_field[p]: c["new"]
                                                    for p, c in action["source_changes"].items()}
    pms_writes = [w for w in writes if w.path.startswith("/api/v1/")]
    posts = Counter(json.dumps((w.path.rsplit("/", 1)[-1], leaves(w.body)), sort_keys=True)
                    for w in pms_writes if w.method == "POST")
    assert posts == expected_posts
    patches = {w.path: flat(w.body) for w in pms_writes if w.method == "PATCH"}
    assert set(patches) == set(expected_patches)
    for path, changes in expected_patches.items():
        assert {p: patches[path].get(p) for p in changes} == changes, path
    tb_writes = {str(w.body.get("Id") or w.path.rsplit("/", 1)[-1]): w.body for w in h.sb.tidsbanken.write_log}
    assert set(tb_writes) == set(expected_tb)
    for record_id, fields in expected_tb.items():
        assert {f: tb_writes[record_id].get(f) or None for f in fields} == fields, record_id


# No shrinking: each example seeds two emulators and runs the CLI three times; six edits read well enough.
@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.generate])
@given(st.lists(EDITS, max_size=6))
def test_plan_predicts_apply(edits: list[Edit]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        h = make_harness(Path(tmp))
        try:
            assert h.apply().exit_code == 0
            for serial, edit in enumerate(edits):
                make_edit(h, edit, serial)
            h.sb.tidsbanken.reset_counts()
            h.sb.custompms.reset_counts()
            planned = h.plan("--full", "--json")
            assert planned.exit_code == 0, planned.output
            assert not h.sb.tidsbanken.write_log and not h.sb.custompms.write_log  # plan writes nothing
            run = h.apply("--full")
            assert run.report is not None, run.output
            assert_plan_was_performed(h, json.loads(planned.stdout), run.report,
                                      h.sb.tidsbanken.write_log + h.sb.custompms.write_log)
        finally:
            h.close()
