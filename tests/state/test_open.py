"""Opening a store by URL, and the package's public surface."""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import mapsync.state
from mapsync.errors import SpecError, StateError
from mapsync.state import Link, open_store
from mapsync.state.postgres import advisory_key, split_url


def test_all_lists_the_public_names_sorted() -> None:
    public = {name for name, value in vars(mapsync.state).items()
              if not name.startswith("_") and not isinstance(value, ModuleType)}
    imported_for_own_use = {"annotations", "Callable", "SpecError"}
    assert public - set(mapsync.state.__all__) == imported_for_own_use
    assert all(hasattr(mapsync.state, name) for name in mapsync.state.__all__)
    assert mapsync.state.__all__ == ["STORES", *sorted(set(mapsync.state.__all__) - {"STORES"})]


def test_a_postgresql_state_without_psycopg_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # psycopg is the optional `postgres` extra: None in sys.modules makes importing it fail as if absent
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "mapsync.state.postgres")
    with pytest.raises(SpecError, match=re.escape("pip install 'mapsync[postgres]'")):
        open_store("postgresql://user@localhost/db")


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


# -- the SQLite file: private, and a path that cannot hold it is named ---------------------------------


@pytest.fixture(params=[0o022, 0o000, 0o277], ids=["umask 022", "umask 000", "umask 277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_sqlite_state_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "made" / "by" / "mapsync" / "state.db"
    tmp_mode = stat.S_IMODE(tmp_path.stat().st_mode)
    store = open_store(f"sqlite:///{path}")
    try:
        store.put_link(Link("kunde", "S1", "T1", {"name": "Kari Nordmann", "phone": "+47 900 00 000"}))
        files = [path, path.with_name("state.db-wal"), path.with_name("state.db-shm")]
        assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == dict.fromkeys(
            (p.name for p in files), "0o600")
        folders = [tmp_path / "made", tmp_path / "made" / "by", path.parent]
        assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in folders] == ["0o700"] * 3
        assert stat.S_IMODE(tmp_path.stat().st_mode) == tmp_mode  # a folder mapsync did not make is left be
    finally:
        store.close()


def test_an_existing_sqlite_state_opens_as_it_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    open_store(url).close()
    store = open_store(url)
    store.close()


@pytest.mark.parametrize(("place", "problem"), [
    ("somefile.txt/state.db", "{tmp}/somefile.txt is a file, not a folder"),
    ("somefile.txt/deeper/state.db", "{tmp}/somefile.txt is a file, not a folder"),
    ("adir", "{tmp}/adir is a directory, not a database file"),
])
def test_a_sqlite_path_that_cannot_hold_the_state_is_a_spec_error_naming_it(
        tmp_path: Path, place: str, problem: str) -> None:
    (tmp_path / "somefile.txt").write_text("not a folder", encoding="utf-8")
    (tmp_path / "adir").mkdir()
    url = f"sqlite:///{tmp_path}/{place}"
    with pytest.raises(SpecError) as caught:
        open_store(url)
    assert str(caught.value) == f"state {url}: {problem.format(tmp=tmp_path)}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_sqlite_path_in_a_read_only_folder_is_a_spec_error_naming_it(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(SpecError) as caught:
            open_store(f"sqlite:///{locked}/new/state.db")
        assert str(caught.value) == (f"state sqlite:///{locked}/new/state.db: cannot create the folder {locked}/new: "
                                     "Permission denied")
        with pytest.raises(SpecError) as caught:
            open_store(f"sqlite:///{locked}/state.db")
        assert str(caught.value) == (f"state sqlite:///{locked}/state.db: cannot create {locked}/state.db: "
                                     "Permission denied")
    finally:
        locked.chmod(0o700)


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="no /sys, a place nobody may write")
def test_a_sqlite_path_where_nobody_may_write_is_a_spec_error_naming_it() -> None:
    with pytest.raises(SpecError) as caught:
        open_store("sqlite:////sys/mapsync/state.db")
    assert str(caught.value).startswith("state sqlite:////sys/mapsync/state.db: cannot create the folder "
                                        "/sys/mapsync: ")
