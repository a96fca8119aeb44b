"""The state URL through the command line: its secrets never shown (errors, reports, `links`, --debug
tracebacks), and a SQLite path that cannot hold the state is one line and exit 2, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mapsync.cli._app import _register_commands, cli
from mapsync.state import open_store

REPO = Path(__file__).parents[2]
SECRET = "hunter2secret"

_register_commands()

# Each would once have shown SECRET: as a query parameter, or in a URL that libpq or urlsplit refuses.
LEAKY_URLS = {
    "password parameter": f"postgresql://postgres@127.0.0.1:1/test?password={SECRET}",
    "sslpassword parameter": f"postgresql://postgres@127.0.0.1:1/test?sslmode=disable&sslpassword={SECRET}",
    "bad port": f"postgresql://postgres:{SECRET}@127.0.0.1:badport/test",
    "stray bracket": f"postgresql://postgres:{SECRET}[@127.0.0.1/test",
    "space in password": "postgresql://postgres:hunter2 secret@127.0.0.1:1/test",
    "unknown parameter": f"postgresql://postgres@127.0.0.1:1/test?password={SECRET}&bogus=1",
}
COMMANDS = {"apply": ["apply"], "plan": ["plan"], "links": ["links", "list"], "links failed": ["links", "failed"]}


# The reference workspace, read only: every command here stops at the state store, before it reads or
# writes anything else.
CONFIG = str(REPO / "mapsync.yaml")


def run(state: str, *args: str, debug: bool = False) -> Result:
    options = ["--debug"] if debug else []
    return CliRunner(env={"MAPSYNC_STATE": state, "MAPSYNC_CONFIG": None}).invoke(
        cli, [*options, "--config", CONFIG, *args])


def debug_output(state: str, *args: str) -> str:
    """What `mapsync --debug` shows, in process: its output, then the traceback of the error it let through
    (formatted as the interpreter prints it)."""
    result = run(state, *args, debug=True)
    assert result.exception is not None and not isinstance(result.exception, SystemExit), result.output
    return result.output + "".join(traceback.format_exception(result.exception))


def debug_run(state: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "MAPSYNC_CONFIG"} | {"MAPSYNC_STATE": state}
    return subprocess.run([sys.executable, "-m", "mapsync", "--debug", "--config", CONFIG, *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def assert_hidden(text: str) -> None:
    assert "hunter2" not in text and "secret" not in text.lower(), text  # nor any piece of it


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.parametrize("url", LEAKY_URLS.values(), ids=LEAKY_URLS.keys())
def test_a_state_url_never_shows_its_password(url: str, command: list[str]) -> None:
    result = run(url, *command)
    assert result.exit_code in (1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith(("error: state", "error: cannot connect to the state store", "state URL")), \
        result.stderr
    assert_hidden(result.output)


@pytest.mark.parametrize("command", [["apply"], ["links", "list"]], ids=["apply", "links"])
@pytest.mark.parametrize("url", LEAKY_URLS.values(), ids=LEAKY_URLS.keys())
def test_a_debug_traceback_never_shows_the_password(url: str, command: list[str]) -> None:
    shown = debug_output(url, *command)
    assert "Traceback" in shown and "Error: " in shown  # --debug does show the traceback ...
    assert_hidden(shown)  # ... but not what psycopg or urlsplit said with the secret


@pytest.mark.parametrize("command", [["apply"], ["links", "list"]], ids=["apply", "links"])
@pytest.mark.parametrize("url", [LEAKY_URLS["password parameter"], LEAKY_URLS["stray bracket"]],
                         ids=["password parameter", "stray bracket"])
def test_a_debug_traceback_of_a_real_process_never_shows_the_password(url: str, command: list[str]) -> None:
    done = debug_run(url, *command)  # as printed by the interpreter itself, to a real stderr
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "Error: " in done.stderr
    assert_hidden(done.stdout + done.stderr)


@pytest.fixture
def held(store_url: str) -> Iterator[str]:
    """The store_url with a password parameter (the test server trusts, and ignores it), its first
    dataflow's run lock held by another store."""
    url = f"{store_url}&password={SECRET}"
    store = open_store(url)
    try:
        with store.lock("apply:avdeling-customer"):
            yield url
    finally:
        store.close()


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_the_report_of_a_run_shows_the_state_url_without_its_password(tmp_path: Path, held: str) -> None:
    report = tmp_path / "report.json"
    result = run(held, "apply", "--json-report", str(report))
    assert result.exit_code == 1
    assert "is held by" in result.stderr and "password=***" in result.stderr, result.stderr
    assert_hidden(result.output)
    assert_hidden(report.read_text(encoding="utf-8"))
    assert any("password=***" in error for error in json.loads(report.read_text(encoding="utf-8"))["errors"])


# -- a SQLite path that cannot hold the state ----------------------------------------------------------

BAD_PATHS = {
    "under a file": ("{tmp}/somefile.txt/state.db", "{tmp}/somefile.txt is a file, not a folder"),
    "a directory": ("{tmp}/adir", "{tmp}/adir is a directory, not a database file"),
    "read-only place": ("/sys/mapsync/state.db", "cannot create the folder /sys/mapsync: "),
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.parametrize(("path", "problem"), BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_a_state_path_that_cannot_hold_the_state_exits_2_naming_it(
        tmp_path: Path, path: str, problem: str, command: list[str]) -> None:
    if path.startswith("/sys") and not Path("/sys/kernel").is_dir():
        pytest.skip("no /sys, a place nobody may write")
    (tmp_path / "somefile.txt").write_text("a file", encoding="utf-8")
    (tmp_path / "adir").mkdir()
    url = "sqlite:///" + path.format(tmp=tmp_path)
    result = run(url, *command)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr.startswith(f"state {url}: {problem.format(tmp=tmp_path)}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
