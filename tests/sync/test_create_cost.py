"""Issue 15 point 3: an initial sync does per created record only what the record needs. The body of a
create is built once, by the planner, which checks it against the target's schema; the executor sends
that same body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from e2e_expect import assert_in_sync
from sync_harness import Harness, all_links

from mapsync.mapping.mapper import Mapper
from mapsync.sandbox import SeedSize

SIZE = SeedSize(avdelinger=3, kunder=12, prosjekter=8)


def test_each_create_body_is_built_once(make_harness: Callable[..., Harness], sqlite_url: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    h = make_harness(sqlite_url, seed=SIZE)
    built = 0
    create_body = Mapper.create_body

    def counted(mapper: Mapper, values: dict[str, Any]) -> dict[str, Any]:
        nonlocal built
        built += 1
        return create_body(mapper, values)

    monkeypatch.setattr(Mapper, "create_body", counted)
    run = h.apply()
    assert run.exit_code == 0, run.output
    created = sum(len(h.links(name)) for name in ("avdeling-customer", "kunde-customer", "prosjekt-project"))
    assert created == 3 + 12 + 8
    assert built == created
    assert_in_sync(h.sb, all_links(h))
