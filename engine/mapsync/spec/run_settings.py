"""The `run:` section of mapsync.yaml (the schedule of `mapsync run`): durations, the full-scan cron
expression, the endpoint's address and the trigger token, each checked at load with file and line.

The parsers live here, below the worker, so that loading a workspace can check every value; the worker
(worker/schedule.py) and the `--every` / `--listen` flags use the same ones."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from mapsync.errors import MapsyncError, SpecError
from mapsync.spec._yaml import Document
from mapsync.spec.model import RunSettings

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_DURATION = 30 * 86400.0  # a month: a longer interval is a slip (and a backoff past it means nothing)
DURATION_HINT = "write e.g. 30s, 5m, 1h or 1h30m"


class SettingError(MapsyncError):
    """A `run:` value (or the flag overriding it) that cannot be used; the loader adds file and line."""


def parse_duration(text: str) -> float:
    """'30s' -> 30.0, '1h30m' -> 5400.0, '500ms' -> 0.5; raises SettingError for anything else."""
    compact = text.strip().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise SettingError(f"{text!r} is not a duration ({DURATION_HINT})")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if not 0 < seconds <= MAX_DURATION:
        raise SettingError(f"{text!r} is out of range: a duration is more than 0 and at most 30 days")
    return seconds


def check_cron(text: str) -> str:
    """The cron expression as given, once croniter accepts it (five fields: minute hour day month weekday)."""
    from croniter import croniter  # only a workspace with a full_scan schedule pays for it

    if len(text.split()) != 5 or not croniter.is_valid(text):
        raise SettingError(f"{text!r} is not a cron expression (five fields: minute hour day month weekday, "
                           "e.g. \"30 2 * * *\" for 02:30 every day)")
    return text


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:9100' -> ('127.0.0.1', 9100); '[::1]:9100' -> ('::1', 9100); ':9100' means loopback."""
    host, colon, port = text.strip().rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9100, or 0.0.0.0:9100 for every interface)")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    if any(c.isspace() for c in host) or "/" in host:
        raise SettingError(f"{text!r} is not HOST:PORT: {host!r} is not a host name or address")
    return host, int(port)


def read_run_settings(doc: Document, data: dict[str, Any], dataflows: Collection[str], errors: list[SpecError],
                      unloaded: Collection[str] = ()) -> RunSettings:
    """The `run:` section, interpolated (`data`); each unusable value is reported at its line and left at
    its default. Types and unknown keys are the JSON Schema's to report."""
    raw = data.get("run")
    if not isinstance(raw, dict):
        return RunSettings()
    settings = RunSettings()
    every = _value(doc, ("run", "every"), raw.get("every"), parse_duration, errors)
    if every is not None:
        settings.every = every
    settings.full_scan = _value(doc, ("run", "full_scan"), raw.get("full_scan"), check_cron, errors)
    if _value(doc, ("run", "listen"), raw.get("listen"), parse_listen, errors) is not None:
        settings.listen = raw["listen"].strip()
    settings.trigger_token = _trigger_token(doc, raw.get("trigger_token"), errors)
    settings.dataflows = _dataflow_overrides(doc, raw.get("dataflows"), dataflows, errors, unloaded)
    return settings


def _value(doc: Document, path: tuple[str, ...], value: Any, parse: Any, errors: list[SpecError]) -> Any:
    if not isinstance(value, str):
        return None
    try:
        return parse(value)
    except SettingError as exc:
        errors.append(doc.error(path, str(exc)))
        return None


def _trigger_token(doc: Document, value: Any, errors: list[SpecError]) -> str | None:
    if not isinstance(value, str):
        return None
    written = doc.data.get("run", {}).get("trigger_token") if isinstance(doc.data, dict) else None
    if isinstance(written, str) and "${" not in written:
        # never quoted back: it is a secret, written where it does not belong
        errors.append(doc.error(("run", "trigger_token"), "a secret comes only from the environment: write "
                                                          "trigger_token: ${MAPSYNC_TRIGGER_TOKEN}"))
        return None
    return value or None  # ${VAR:-} left empty: no token, so POST /trigger is refused


def _dataflow_overrides(doc: Document, raw: Any, known: Collection[str], errors: list[SpecError],
                        unloaded: Collection[str]) -> dict[str, float]:
    if not isinstance(raw, dict):
        return {}
    overrides: dict[str, float] = {}
    for name, settings in raw.items():
        if name not in known:
            if name not in unloaded and "*" not in unloaded:
                errors.append(doc.error(("run", "dataflows", name), f"unknown dataflow {name!r} (known: "
                                                                    f"{', '.join(known) or 'none'})"))
            continue
        every = settings.get("every") if isinstance(settings, dict) else None
        seconds = _value(doc, ("run", "dataflows", name, "every"), every, parse_duration, errors)
        if seconds is not None:
            overrides[name] = seconds
    return overrides
