"""`mapsync sandbox`: serve the Tidsbanken and Custompms emulators on loopback until Ctrl-C."""

from __future__ import annotations

import shlex
import threading

import click

from mapsync.cli._app import cli
from mapsync.sandbox import Faults, Sandbox, SeedSize
from mapsync.sandbox.custompms import DEFAULT_TOKEN
from mapsync.sandbox.seed import DEFAULT_COUNTS, SEEDED_ENTITIES
from mapsync.sandbox.tidsbanken import DEFAULT_API_KEY, DEFAULT_SUBSCRIPTION_KEY

_DEFAULTS = ", ".join(f"{entity}={count}" for entity, count in DEFAULT_COUNTS.items())


def parse_count(text: str) -> tuple[str, int]:
    """ENTITY=N of `--count`, the entity checked against the seeded ones."""
    entity, equals, raw = text.partition("=")
    if not equals or not raw.strip().isdigit():
        raise click.BadParameter(f"{text!r} is not ENTITY=N (e.g. Kunde=200)", param_hint="--count")
    known = {name.lower(): name for name in SEEDED_ENTITIES}
    name = known.get(entity.strip().lower())
    if name is None:
        raise click.BadParameter(f"cannot seed {entity.strip()!r}; the seeded entities are "
                                 f"{', '.join(SEEDED_ENTITIES)}", param_hint="--count")
    return name, int(raw)


def seed_size(counts: tuple[str, ...], aliases: dict[str, int | None]) -> SeedSize:
    """`--count ENTITY=N` (repeatable), then the old per-entity flags, which win when both are given."""
    chosen = dict(parse_count(text) for text in counts)
    chosen.update({entity: count for entity, count in aliases.items() if count is not None})
    return SeedSize(counts=chosen)


def describe(sandbox: Sandbox) -> str:
    """What the command prints: both URLs and keys (sandbox keys are not secrets), then export lines."""
    tb, pms = sandbox.tidsbanken, sandbox.custompms
    lines = [
        f"Tidsbanken emulator: {tb.url}  (tb-key: {tb.api_key}, subscription key: {tb.subscription_key})",
        f"Custompms emulator:  {pms.url}  (bearer token: {pms.token})",
        "",
        "Paste into a shell to point mapsync at the sandbox:",
    ]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in sandbox.env().items()]
    lines += ["", "Serving until Ctrl-C."]
    return "\n".join(lines)


def wait_for_interrupt() -> None:
    """Blocks until Ctrl-C (a separate function so tests can replace it)."""
    stop = threading.Event()
    while not stop.wait(3600):
        pass


@cli.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--tidsbanken-port", type=click.IntRange(0, 65535), default=8711, show_default=True)
@click.option("--custompms-port", type=click.IntRange(0, 65535), default=8712, show_default=True)
@click.option("--count", "counts", multiple=True, metavar="ENTITY=N",
              help=f"How many records of a Tidsbanken entity to seed (repeatable; defaults: {_DEFAULTS}).")
@click.option("--avdelinger", type=click.IntRange(min=0), default=None,
              help="Deprecated alias of --count Avdeling=N (kept for one release).")
@click.option("--kunder", type=click.IntRange(min=0), default=None,
              help="Deprecated alias of --count Kunde=N (kept for one release).")
@click.option("--prosjekter", type=click.IntRange(min=0), default=None,
              help="Deprecated alias of --count Prosjekt=N (kept for one release).")
@click.option("--empty", is_flag=True, help="Start both systems without sample data.")
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, help="Seconds added to every request.")
@click.option("--rate-429", type=click.FloatRange(0, 1), default=0.0, help="Share of requests answered 429.")
@click.option("--rate-503", type=click.FloatRange(0, 1), default=0.0, help="Share of requests answered 503.")
@click.option("--rate-drop", type=click.FloatRange(0, 1), default=0.0, help="Share of connections dropped.")
@click.option("--rate-drop-after-write", type=click.FloatRange(0, 1), default=0.0,
              help="Share of writes performed, then answered by a dropped connection.")
@click.option("--rate-slow", type=click.FloatRange(0, 1), default=0.0, help="Share of requests answered slowly.")
@click.option("--slow-seconds", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="How slow a slow answer is.")
@click.option("--rate-trickle", type=click.FloatRange(0, 1), default=0.0,
              help="Share of answers whose body is sent a byte at a time.")
@click.option("--trickle-seconds", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="The pause before each byte of a trickled answer.")
@click.option("--rate-gzip-bomb", type=click.FloatRange(0, 1), default=0.0,
              help="Share of requests answered by a small gzip body that inflates to --gzip-bomb-bytes.")
@click.option("--gzip-bomb-bytes", type=click.IntRange(min=0), default=300 * 1024 * 1024, show_default=True,
              help="Size of a gzip bomb, inflated.")
@click.option("--rate-deep-json", type=click.FloatRange(0, 1), default=0.0,
              help="Share of requests answered by JSON nested 100,000 levels deep.")
@click.option("--rate-redirect", type=click.FloatRange(0, 1), default=0.0,
              help="Share of requests answered by a 302 redirect to --redirect-to.")
@click.option("--redirect-to", default=Faults.redirect_to, show_default=True, help="Where a redirect points.")
@click.option("--fault-path", "fault_paths", multiple=True, metavar="PREFIX",
              help="Only requests whose path starts with PREFIX draw faults (repeatable; default: every path).")
@click.option("--rng-seed", type=int, default=1, show_default=True, help="Seed of the sample data and faults.")
@click.option("--tb-key", default=DEFAULT_API_KEY, show_default=True, help="Tidsbanken tb-key.")
@click.option("--subscription-key", default=DEFAULT_SUBSCRIPTION_KEY, show_default=True,
              help="Tidsbanken Ocp-Apim-Subscription-Key.")
@click.option("--pms-token", default=DEFAULT_TOKEN, show_default=True, help="Custompms bearer token.")
def sandbox_command(
    *,
    host: str,
    tidsbanken_port: int,
    custompms_port: int,
    counts: tuple[str, ...],
    avdelinger: int | None,
    kunder: int | None,
    prosjekter: int | None,
    empty: bool,
    latency: float,
    rate_429: float,
    rate_503: float,
    rate_drop: float,
    rate_drop_after_write: float,
    rate_slow: float,
    slow_seconds: float,
    rate_trickle: float,
    trickle_seconds: float,
    rate_gzip_bomb: float,
    gzip_bomb_bytes: int,
    rate_deep_json: float,
    rate_redirect: float,
    redirect_to: str,
    fault_paths: tuple[str, ...],
    rng_seed: int,
    tb_key: str,
    subscription_key: str,
    pms_token: str,
) -> None:
    """Serve the Tidsbanken and Custompms emulators on loopback, seeded with sample data."""
    try:
        faults = Faults(rate_429=rate_429, rate_503=rate_503, rate_drop=rate_drop,
                        rate_drop_after_write=rate_drop_after_write, rate_slow=rate_slow, slow_seconds=slow_seconds,
                        latency=latency, seed=rng_seed, rate_trickle=rate_trickle, trickle_seconds=trickle_seconds,
                        rate_gzip_bomb=rate_gzip_bomb, gzip_bomb_bytes=gzip_bomb_bytes, rate_deep_json=rate_deep_json,
                        rate_redirect=rate_redirect, redirect_to=redirect_to, paths=fault_paths)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    aliases = {"Avdeling": avdelinger, "Kunde": kunder, "Prosjekt": prosjekter}
    seed = None if empty else seed_size(counts, aliases)
    sandbox = Sandbox(
        seed=seed, faults=faults, rng_seed=rng_seed, host=host,
        tidsbanken_port=tidsbanken_port, custompms_port=custompms_port,
        tidsbanken_api_key=tb_key, tidsbanken_subscription_key=subscription_key, custompms_token=pms_token,
    )
    try:
        sandbox.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}: {exc}") from None
    try:
        click.echo(describe(sandbox))
        wait_for_interrupt()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)  # Ctrl-C is how this command ends: exit 0
    finally:
        sandbox.stop()


__all__ = ["describe", "parse_count", "sandbox_command", "seed_size", "wait_for_interrupt"]
