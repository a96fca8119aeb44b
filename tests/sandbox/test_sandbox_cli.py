"""`mapsync sandbox`: option parsing and what it prints (the blocking wait is replaced)."""

from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner

from mapsync.cli import sandbox_cmd
from mapsync.cli._app import cli
from mapsync.sandbox import Sandbox


def test_command_starts_prints_and_stops_on_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def interrupt() -> None:
        # While "serving": the servers answer, then the user presses Ctrl-C.
        response = httpx.get(
            f"{seen['url']}/prosjekt/Kunde",
            headers={"tb-key": "k", "Ocp-Apim-Subscription-Key": "s"},
        )
        seen["status"] = response.status_code
        seen["count"] = len(response.json()["value"])
        raise KeyboardInterrupt

    original_describe = sandbox_cmd.describe

    def describe(sandbox: Sandbox) -> str:
        seen["url"] = sandbox.tidsbanken.url
        seen["faults"] = sandbox.tidsbanken.faults
        return original_describe(sandbox)

    monkeypatch.setattr(sandbox_cmd, "wait_for_interrupt", interrupt)
    monkeypatch.setattr(sandbox_cmd, "describe", describe)
    result = CliRunner().invoke(
        cli,
        ["sandbox", "--tidsbanken-port", "0", "--custompms-port", "0", "--kunder", "7", "--avdelinger", "1",
         "--prosjekter", "2", "--tb-key", "k", "--subscription-key", "s", "--latency", "0.01",
         "--rate-429", "0", "--rng-seed", "4"],
    )
    assert result.exit_code == 0, result.output
    assert (seen["status"], seen["count"]) == (200, 7)
    assert seen["faults"].latency == 0.01  # type: ignore[attr-defined]
    assert seen["faults"].seed == 4  # type: ignore[attr-defined]
    assert f"export TIDSBANKEN_URL={seen['url']}" in result.output
    assert "export TIDSBANKEN_API_KEY=k" in result.output
    assert "export CUSTOMPMS_TOKEN=sandbox-pms-token" in result.output


def test_describe_lists_urls_keys_and_exports(empty_sandbox: Sandbox) -> None:
    text = sandbox_cmd.describe(empty_sandbox)
    assert empty_sandbox.tidsbanken.url in text
    assert empty_sandbox.custompms.url in text
    exports = [line for line in text.splitlines() if line.startswith("export ")]
    assert [line.split("=")[0] for line in exports] == [
        "export TIDSBANKEN_URL", "export TIDSBANKEN_API_KEY", "export TIDSBANKEN_SUBSCRIPTION_KEY",
        "export CUSTOMPMS_URL", "export CUSTOMPMS_TOKEN",
    ]


def test_empty_flag_and_bad_options(monkeypatch: pytest.MonkeyPatch) -> None:
    counts: list[int] = []

    def describe(sandbox: Sandbox) -> str:
        counts.append(len(sandbox.tidsbanken.records("Kunde")))
        return "ok"

    monkeypatch.setattr(sandbox_cmd, "wait_for_interrupt", lambda: None)
    monkeypatch.setattr(sandbox_cmd, "describe", describe)
    runner = CliRunner()
    result = runner.invoke(cli, ["sandbox", "--tidsbanken-port", "0", "--custompms-port", "0", "--empty"])
    assert result.exit_code == 0, result.output
    assert counts == [0]
    assert runner.invoke(cli, ["sandbox", "--rate-429", "2"]).exit_code == 2
    assert runner.invoke(cli, ["sandbox", "--kunder", "-1"]).exit_code == 2
    too_many = runner.invoke(
        cli, ["sandbox", "--tidsbanken-port", "0", "--custompms-port", "0", "--rate-429", "0.7", "--rate-503", "0.7"]
    )
    assert too_many.exit_code == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--count", "Kunde=7", "--count", "avdeling=1"], {"Avdeling": 1, "Kunde": 7, "Prosjekt": 500}),
        (["--kunder", "3", "--prosjekter", "4"], {"Avdeling": 20, "Kunde": 3, "Prosjekt": 4}),
        (["--count", "Kunde=7", "--kunder", "3"], {"Avdeling": 20, "Kunde": 3, "Prosjekt": 500}),
    ],
    ids=["count", "old-aliases", "alias-wins"],
)
def test_seed_counts_by_entity_and_their_old_aliases(monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                     expected: dict[str, int]) -> None:
    seen: list[dict[str, int]] = []

    def describe(sandbox: Sandbox) -> str:
        seen.append({entity: len(sandbox.tidsbanken.records(entity)) for entity in expected})
        return "ok"

    monkeypatch.setattr(sandbox_cmd, "wait_for_interrupt", lambda: None)
    monkeypatch.setattr(sandbox_cmd, "describe", describe)
    result = CliRunner().invoke(cli, ["sandbox", "--tidsbanken-port", "0", "--custompms-port", "0", *args])
    assert result.exit_code == 0, result.output
    assert seen == [expected]


@pytest.mark.parametrize("bad", ["Kunde", "Kunde=x", "Kunde=-1", "Ansatt=3"])
def test_a_bad_count_is_a_usage_error_naming_the_option(bad: str) -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--count", bad])
    assert result.exit_code == 2
    assert "--count" in result.output


def test_help_says_the_old_flags_are_aliases_for_one_release() -> None:
    text = " ".join(CliRunner().invoke(cli, ["sandbox", "--help"]).output.split())  # unwrapped
    assert "--count ENTITY=N" in text
    assert text.count("kept for one release") == 3
