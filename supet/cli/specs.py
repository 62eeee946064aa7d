"""``supet spec``: product quality specs on the QualityCertifier (versioned, per GTIN-14).

``spec owner`` (the certifier's admin assigns who sets a product's spec), ``spec set`` with bounds in
human units (converted to Reading v1 fixed point, value x 10^6, exactly as readings are) and
``spec show``.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer
from eth_utils import is_address
from rich.console import Console

from contracts.certifier import QualityCertifierClient, SpecMetric, human_fixed
from device_attestation.reading import InvalidReading, to_fixed_point
from supet.cli.common import (
    DeploymentOpt,
    GtinOpt,
    KeyFileOpt,
    RpcOpt,
    check_gtin,
    open_deployment,
    utc_seconds,
)
from supet_base.errors import SupetError
from supet_base.parties import load_party_account

__all__ = ["SpecNotFound", "parse_metric", "spec_app"]

spec_app = typer.Typer(
    help="Product quality specs (versioned, per GTIN-14): set, show.", no_args_is_help=True
)
console = Console(soft_wrap=True)

_METRIC = re.compile(r"^(?P<name>[a-z0-9_]{1,32})=(?P<min>[^:]+?)\.\.(?P<max>[^:]+?)(?::(?P<flag>[a-z]+))?$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class SpecNotFound(SupetError):
    """No spec for a product."""

    code = "spec.unknown"


def _number(text: str, what: str) -> int:
    """A human-unit number as Reading v1 fixed point (int as int, decimals as JSON would give them)."""
    t = text.strip()
    if not _NUMBER.match(t):
        raise typer.BadParameter(f"{what} {text!r} is not a number", param_hint="--metric")
    value: int | float = int(t) if re.fullmatch(r"[+-]?\d+", t) else float(t)
    try:
        return int(to_fixed_point(value))
    except InvalidReading as e:
        raise typer.BadParameter(f"{what} {text!r}: {e.message}", param_hint="--metric") from None


def parse_metric(text: str) -> SpecMetric:
    """``NAME=MIN..MAX[:optional]`` (bounds in human units) as a :class:`SpecMetric` in fixed point."""
    m = _METRIC.match(text.strip())
    if m is None:
        raise typer.BadParameter(
            f"{text!r} is not NAME=MIN..MAX[:optional] (name: 1..32 of a-z, 0-9, _; e.g. temp_c=2..8)",
            param_hint="--metric",
        )
    flag = m.group("flag")
    if flag not in (None, "optional", "required"):
        raise typer.BadParameter(
            f"{text!r}: the suffix is ':optional' or ':required', not ':{flag}'", param_hint="--metric"
        )
    lo, hi = _number(m.group("min"), "minimum"), _number(m.group("max"), "maximum")
    if lo > hi:
        raise typer.BadParameter(f"{text!r}: the minimum is above the maximum", param_hint="--metric")
    return SpecMetric(name=m.group("name"), min=lo, max=hi, required=flag != "optional")


@spec_app.command("set")
def spec_set(
    gtin: GtinOpt,
    metric: Annotated[
        list[str],
        typer.Option(
            "--metric",
            help="A metric as NAME=MIN..MAX, bounds in human units (e.g. temp_c=2..8, "
            "weight_g=990..1010:optional); repeat for several.",
        ),
    ],
    min_samples: Annotated[
        int, typer.Option("--min-samples", min=1, help="Readings each required metric needs at least.")
    ],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
) -> None:
    """Set a new version of a product's spec (as its owner, assigned with `supet spec owner`)."""
    check_gtin(gtin)
    metrics = [parse_metric(m) for m in metric]
    seen = [m.name for m in metrics]
    if len(set(seen)) != len(seen):
        raise typer.BadParameter("a metric is given twice", param_hint="--metric")
    if not any(m.required for m in metrics):
        raise typer.BadParameter("at least one metric must be required", param_hint="--metric")
    chain, dep = open_deployment(rpc, deployment)
    certifier = QualityCertifierClient.from_deployment(chain, dep)
    result = certifier.set_spec(load_party_account(key_file), gtin, metrics, min_samples=min_samples)
    version = certifier.latest_spec_version(int(gtin))
    console.print(f"spec version {version} of GTIN {gtin} set in tx {result.tx_hash}")


@spec_app.command("owner")
def spec_owner(
    gtin: GtinOpt,
    owner: Annotated[
        str,
        typer.Option(
            "--owner", help="The buyer who sets the product's spec (0x address); 'none' withdraws it."
        ),
    ],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
) -> None:
    """As the certifier's admin, assign who sets a product's spec and names its devices."""
    check_gtin(gtin)
    who = None if owner.lower() == "none" else owner
    if who is not None and not is_address(who):
        raise typer.BadParameter(f"{owner!r} is not an address (or 'none')", param_hint="--owner")
    chain, dep = open_deployment(rpc, deployment)
    certifier = QualityCertifierClient.from_deployment(chain, dep)
    result = certifier.set_spec_owner(load_party_account(key_file), gtin, who)
    console.print(f"GTIN {gtin}: spec owner {who or 'withdrawn'} (tx {result.tx_hash})")


@spec_app.command("show")
def spec_show(
    gtin: GtinOpt,
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="The spec version (default: the latest).")
    ] = None,
) -> None:
    """Show a version of a product's spec, bounds in human units."""
    check_gtin(gtin)
    chain, dep = open_deployment(rpc, deployment)
    certifier = QualityCertifierClient.from_deployment(chain, dep)
    if version is None and certifier.latest_spec_version(int(gtin)) == 0:
        raise SpecNotFound(f"GTIN {gtin}: no spec (set one with `supet spec set`)")
    spec = certifier.spec(int(gtin), version)
    console.print(
        f"GTIN {gtin} spec version {spec.version}: at least {spec.min_samples} samples per required metric"
    )
    console.print(f"  set by {spec.set_by} at {utc_seconds(spec.set_at)}")
    for m in spec.metrics:
        kind = "required" if m.required else "optional"
        console.print(f"  {m.name} = {human_fixed(m.min)} .. {human_fixed(m.max)} ({kind})")
