"""`make demo` / `python -m mapsync.demo`: the whole story against the sandbox, narrated for a newcomer.

It starts both emulators on loopback with a realistic Norwegian sample, then runs the commands an
integrator would run on the reference workspace (mapsync.yaml + mappings/ in the current folder):
validate, test, docs, plan, apply; then edits a few records on both sides and applies again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from mapsync.sandbox import Sandbox, SeedSize


def say(text: str) -> None:
    print()
    print("\n".join(textwrap.wrap(text, 100)))
    sys.stdout.flush()


def step(number: int, title: str) -> None:
    print()
    print(f"=== {number}. {title} " + "=" * max(0, 88 - len(title)))
    sys.stdout.flush()


def mapsync(env: dict[str, str], *args: str, head: int | None = None) -> int:
    print(f"$ mapsync {' '.join(args)}")
    sys.stdout.flush()
    done = subprocess.run([sys.executable, "-m", "mapsync", *args], env=env, text=True, capture_output=True,
                          check=False)
    lines = (done.stdout + done.stderr).rstrip().splitlines()
    if head is not None and len(lines) > head + 3:
        lines = [*lines[:head], f"  ... ({len(lines) - head - 3} more lines)", *lines[-3:]]
    print("\n".join(lines))
    print(f"(exit status {done.returncode})")
    return done.returncode


def main() -> int:
    if not Path("mapsync.yaml").is_file():
        print("run the demo from the folder holding mapsync.yaml (the repository root)", file=sys.stderr)
        return 2
    state_dir = Path(tempfile.mkdtemp(prefix="mapsync-demo-"))
    with Sandbox(seed=SeedSize(), rng_seed=1) as sandbox:
        env = {**os.environ, **sandbox.env(), "MAPSYNC_STATE": f"sqlite:///{state_dir / 'state.db'}"}
        kunder = sandbox.tidsbanken.records("Kunde")
        say(f"The sandbox is up: a Tidsbanken emulator at {sandbox.tidsbanken.url} holding "
            f"{len(sandbox.tidsbanken.records('Avdeling'))} Avdelinger, {len(kunder)} Kunder and "
            f"{len(sandbox.tidsbanken.records('Prosjekt'))} Prosjekter, and an empty Custompms emulator at "
            f"{sandbox.custompms.url}. The state (links, cursors) goes to {state_dir}.")

        step(1, "Check the mappings offline (what CI runs)")
        say("validate loads mapsync.yaml and every file in mappings/, and checks them against the mapping "
            "format, the entity schemas of both systems, JMESPath syntax and references.")
        mapsync(env, "validate")
        mapsync(env, "test")
        mapsync(env, "docs", "--out", str(state_dir / "docs"))

        step(2, "Preview: what would a first sync do?")
        say("plan reads both systems and prints every record-level action without changing anything. Here, "
            "only the Avdeling dataflow, to keep it short:")
        mapsync(env, "plan", "--dataflow", "avdeling-customer", head=24)

        step(3, "The first sync")
        say("apply creates a Custompms Customer for every Avdeling and Kunde, then a Project for every "
            "Prosjekt, its customer and department translated through the links just made.")
        mapsync(env, "apply", "--json-report", str(state_dir / "report.json"))
        say(f"The JSON report for monitoring is in {state_dir / 'report.json'}.")

        step(4, "Nothing changed: nothing to do")
        mapsync(env, "apply")
        say("Reading back what mapsync itself wrote causes no write (echo prevention): no POST, PUT or PATCH.")

        step(5, "Edits on both sides")
        first, second = kunder[0], kunder[1]
        sandbox.tidsbanken.edit("Kunde", first["Id"], Telefon="+47 22 33 44 55")
        prosjekt = sandbox.tidsbanken.records("Prosjekt")[0]
        sandbox.tidsbanken.edit("Prosjekt", prosjekt["Id"], Navn=prosjekt["Navn"] + " (fase 2)")
        customer = next(c for c in sandbox.custompms.records("customers")
                        if c["kind"] == "customer" and c["name"] == second["Navn"])
        sandbox.custompms.edit("customers", customer["id"], email="faktura@example.no")
        say(f"In Tidsbanken someone changed the phone of Kunde {first['Id']} ({first['Navn']}) and renamed "
            f"Prosjekt {prosjekt['Id']}; in Custompms someone changed the e-mail of the Customer "
            f"{customer['name']}. plan shows exactly these three, each in the direction it must go:")
        mapsync(env, "plan", "--exit-code")
        mapsync(env, "apply")
        updated = sandbox.tidsbanken.get("Kunde", second["Id"]) or {}
        say(f"Tidsbanken now has Epost={updated.get('Epost')!r} for {second['Navn']}: the Custompms edit "
            "flowed back. One write per changed record, nothing else.")

        step(6, "And once more: still nothing to do (no ping-pong)")
        mapsync(env, "apply")
        say("That is the whole loop. Next: docs/getting-started.md shows how to point mapsync.yaml at a real "
            "Tidsbanken and Custompms; `mapsync sandbox` serves these emulators for your own experiments.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
