"""Suite-wide fixtures: started sandboxes (the Tidsbanken and Custompms emulators on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mapsync.sandbox import Sandbox, SeedSize

SMALL_SEED = SeedSize(avdelinger=3, kunder=10, prosjekter=20)


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """make_sandbox(**Sandbox kwargs) -> a started Sandbox, stopped at teardown."""
    started: list[Sandbox] = []

    def make(**kwargs: Any) -> Sandbox:
        sandbox = Sandbox(**kwargs).start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A small seeded sandbox (3 Avdelinger, 10 Kunder, 20 Prosjekter), faults off."""
    return make_sandbox(seed=SMALL_SEED, rng_seed=1)


@pytest.fixture
def empty_sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """Both systems empty, faults off."""
    return make_sandbox(seed=None)
