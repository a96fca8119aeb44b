"""The sandbox: HTTP emulators of Tidsbanken and Custompms, for demos and tests.

    with Sandbox(seed=SeedSize(counts={"Avdeling": 20, "Kunde": 200, "Prosjekt": 500}), rng_seed=1) as sb:
        sb.tidsbanken.url, sb.custompms.url, sb.env()
        sb.tidsbanken.edit("Kunde", "K10001", Navn="Nytt navn AS")   # as if a person used the UI
        sb.set_faults(Faults(rate_429=0.1, seed=7))

`seed=None` (the default) starts both systems empty. Seed data goes to Tidsbanken only: Custompms
starts empty, as it does when a sync is first switched on.

Each emulator is a plain handler over its own data (`handle(request) -> response`); `start()` serves it
on 127.0.0.1 (`_server`), `transport()` in process as an `httpx.MockTransport` (`_transport`), both
through the same fault wrapper (`_injector`). A Sandbox that is never started is served in process only.
"""

from __future__ import annotations

from types import TracebackType

from mapsync.sandbox.custompms import DEFAULT_TOKEN, CustompmsEmulator, InvalidBodyError
from mapsync.sandbox.faults import Fault, Faults
from mapsync.sandbox.seed import SeedSize, generate
from mapsync.sandbox.tidsbanken import DEFAULT_API_KEY, DEFAULT_SUBSCRIPTION_KEY, TidsbankenEmulator


class Sandbox:
    """Both emulators, seeded and started together; a context manager that stops them on exit."""

    def __init__(
        self,
        seed: SeedSize | None = None,
        faults: Faults | None = None,
        rng_seed: int = 1,
        *,
        host: str = "127.0.0.1",
        tidsbanken_port: int = 0,
        custompms_port: int = 0,
        tidsbanken_api_key: str = DEFAULT_API_KEY,
        tidsbanken_subscription_key: str = DEFAULT_SUBSCRIPTION_KEY,
        custompms_token: str = DEFAULT_TOKEN,
    ) -> None:
        faults = faults or Faults()
        self.tidsbanken = TidsbankenEmulator(
            host=host, port=tidsbanken_port, api_key=tidsbanken_api_key,
            subscription_key=tidsbanken_subscription_key, faults=faults,
        )
        self.custompms = CustompmsEmulator(host=host, port=custompms_port, token=custompms_token, faults=faults)
        if seed is not None:
            self._seed(seed, rng_seed)

    def _seed(self, size: SeedSize, rng_seed: int) -> None:
        data = generate(size, rng_seed)
        self.tidsbanken.load("Avdeling", data.avdelinger)
        self.tidsbanken.load("Kunde", data.kunder)
        self.tidsbanken.load("Prosjekt", data.prosjekter)

    def start(self) -> Sandbox:
        try:
            self.tidsbanken.start()
            self.custompms.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.tidsbanken.stop()
        self.custompms.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def set_faults(self, faults: Faults) -> None:
        """The same faults on both servers (each draws from its own generator)."""
        self.tidsbanken.faults = faults
        self.custompms.faults = faults

    def env(self) -> dict[str, str]:
        """The environment a mapsync workspace reads its connection settings from."""
        return {
            "TIDSBANKEN_URL": self.tidsbanken.url,
            "TIDSBANKEN_API_KEY": self.tidsbanken.api_key,
            "TIDSBANKEN_SUBSCRIPTION_KEY": self.tidsbanken.subscription_key,
            "CUSTOMPMS_URL": self.custompms.url,
            "CUSTOMPMS_TOKEN": self.custompms.token,
        }


__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_SUBSCRIPTION_KEY",
    "DEFAULT_TOKEN",
    "CustompmsEmulator",
    "Fault",
    "Faults",
    "InvalidBodyError",
    "Sandbox",
    "SeedSize",
    "TidsbankenEmulator",
    "generate",
]
