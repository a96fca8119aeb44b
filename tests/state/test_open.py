"""Opening a store by URL, and the package's public surface."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

import mapsync.state
from mapsync.errors import SpecError, StateError
from mapsync.state import Link, open_store
from mapsync.state.postgres import advisory_key, redact, split_url


def test_all_lists_the_public_names_sorted() -> None:
    public = {name for name, value in vars(mapsync.state).items()
              if not name.startswith("_") and not isinstance(value, ModuleType)}
    imported_for_own_use = {"annotations", "Callable", "SpecError", "urlsplit"}
    assert public - set(mapsync.state.__all__) == imported_for_own_use
    assert all(hasattr(mapsync.state, name) for name in mapsync.state.__all__)
    assert mapsync.state.__all__ == ["STORES", *sorted(set(mapsync.state.__all__) - {"STORES"})]


@pytest.mark.parametrize("url", ["mysql://localhost/db", "state.db", "redis://x:secret@host/0"])
def test_an_unknown_scheme_lists_the_known_ones(url: str) -> None:
    with pytest.raises(SpecError, match="must be one of postgres, postgresql, sqlite") as caught:
        open_store(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://host/x.db", "sqlite:///x.db?mode=ro"])
def test_a_malformed_sqlite_url_is_a_spec_error(url: str) -> None:
    with pytest.raises(SpecError, match=re.escape("sqlite:///path/to/state.db")):
        open_store(url)


def test_sqlite_creates_missing_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    open_store(f"sqlite:///{path}").close()
    assert path.is_file()


def test_sqlite_in_memory_works() -> None:
    store = open_store("sqlite:///:memory:")
    try:
        store.put_link(Link("kunde", "S1", "T1"))
        assert store.count_links("kunde") == 1
        with store.lock("run"):
            pass
    finally:
        store.close()


def test_postgres_urls_keep_their_password_out_of_sight() -> None:
    assert redact("postgresql://u:pw@h:5432/db?schema=s") == "postgresql://u:***@h:5432/db?schema=s"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_postgres_schema_parameter_is_split_off_and_checked() -> None:
    assert split_url("postgresql://u@h/db?sslmode=require&schema=sync_1") == (
        "postgresql://u@h/db?sslmode=require", "sync_1")
    assert split_url("postgresql://u@h/db") == ("postgresql://u@h/db", None)
    with pytest.raises(SpecError, match="lower-case SQL name"):
        split_url("postgresql://u@h/db?schema=Robert');DROP")


def test_advisory_keys_are_stable_signed_64_bit() -> None:
    assert advisory_key("run") == advisory_key("run") != advisory_key("run2")
    assert all(-(2**63) <= advisory_key(name) < 2**63 for name in ("a", "b", "kunde/run"))


def test_an_unreachable_postgres_is_a_state_error_without_the_password() -> None:
    with pytest.raises(StateError, match="cannot connect") as caught:
        open_store("postgresql://postgres:hunter2@127.0.0.1:1/test")
    assert "hunter2" not in str(caught.value)
