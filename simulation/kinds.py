"""What a simulated factory is: its line kind (the planted key parameters, the physics) and its spec.

The laws that use these parameters are in :mod:`simulation.factories`' docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from supet_base.errors import SupetError

__all__ = [
    "PARAMS_PER_STATION",
    "RUBBER_MIXING",
    "SOLAR_CELL",
    "STATIONS",
    "FactorySpec",
    "Health",
    "KeySpec",
    "LineKind",
    "SimulatorError",
]

#: Process-station devices per line.
STATIONS: Final = 7
#: Process parameters per station reading at most (Reading v1: 32 metrics).
PARAMS_PER_STATION: Final = 29


class SimulatorError(SupetError):
    """The simulator was asked for an impossible world."""

    code = "simulator.invalid"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """A planted key parameter of a line kind.

    @param name      metric name (``[a-z0-9_]``)
    @param mean      the process mean (physical units)
    @param spread    the process standard deviation
    @param offset    the optimum is ``mean + offset * spread``
    @param width     the half-width of the planted window, in spreads
    @param strength  ``a_j``: logit loss at the window's edge
    """

    name: str
    mean: float
    spread: float
    offset: float
    width: float
    strength: float

    @property
    def center(self) -> float:
        return self.mean + self.offset * self.spread

    @property
    def window(self) -> tuple[float, float]:
        """The planted optimal window ``[c - w, c + w]`` in physical units."""
        w = self.width * self.spread
        return (self.center - w, self.center + w)


@dataclass(frozen=True, slots=True)
class LineKind:
    """The physics of a kind of production line."""

    name: str
    keys: tuple[KeySpec, ...]
    units_per_interval: float
    target_yield: float
    rework_share: float
    n_parameters: int = 203
    #: energy law (simulation.factories): kWh per unit made, the running line's base load, and the
    #: load when stopped (unplanned) and when planned down, kW
    kwh_per_unit: float = 0.25
    base_kw: float = 30.0
    standby_kw: float = 8.0
    off_kw: float = 1.0


#: A crystalline-silicon solar-cell line. A-grade = the cell's efficiency bin at or above the
#: line's top bin with no electroluminescence defect. Planted drivers: texturing time (pyramid
#: size), diffusion peak temperature and the resulting emitter sheet resistance, SiNx
#: anti-reflection thickness, and the contact firing peak (too cold: high contact resistance; too
#: hot: junction shunting). The line tests about 40 cells per 5-minute interval.
SOLAR_CELL: Final = LineKind(
    name="solar-cell",
    keys=(
        KeySpec("texture_etch_s", 600.0, 40.0, 0.6, 1.0, 1.0),
        KeySpec("diffusion_peak_c", 845.0, 6.0, -0.5, 0.9, 1.2),
        KeySpec("sheet_res_ohm_sq", 120.0, 8.0, 0.7, 1.1, 0.9),
        KeySpec("sinx_thickness_nm", 78.0, 3.0, -0.6, 1.0, 1.1),
        KeySpec("firing_peak_c", 760.0, 8.0, 0.5, 0.9, 1.3),
    ),
    units_per_interval=40.0,
    target_yield=0.78,
    rework_share=0.4,
    kwh_per_unit=0.25,
)

#: A rubber internal mixer (compounding for tyres and seals). One batch per 5-minute interval;
#: A-grade = the batch's Mooney viscosity and rheometer cure curve inside the customer's band.
#: Planted drivers: dump temperature (scorch above, poor dispersion below), specific mixing
#: energy, ram pressure, rotor speed and the carbon-black feed rate.
RUBBER_MIXING: Final = LineKind(
    name="rubber-mixing",
    keys=(
        KeySpec("dump_temp_c", 150.0, 5.0, -0.6, 0.9, 1.3),
        KeySpec("mix_energy_kwh_t", 110.0, 9.0, 0.5, 1.0, 1.0),
        KeySpec("ram_pressure_bar", 6.0, 0.4, 0.6, 1.1, 0.9),
        KeySpec("rotor_speed_rpm", 45.0, 3.0, -0.5, 1.0, 1.1),
        KeySpec("cb_feed_kg_min", 22.0, 1.5, 0.7, 0.9, 1.0),
    ),
    units_per_interval=1.0,
    target_yield=0.8,
    rework_share=0.6,
    kwh_per_unit=27.5,
)

Health = Literal["healthy", "deteriorating"]


@dataclass(frozen=True, kw_only=True)
class FactorySpec:
    """One simulated factory (see the module docstring for the laws)."""

    factory_id: str
    kind: LineKind
    seed: int
    lines: int = 1
    health: Health = "healthy"
    interval_s: int = 300
    failure_rate: float = 0.004
    repair_intervals: float = 6.0
    speed: float = 0.95
    maintenance_hour: int = 2
    deterioration_failure_factor: float = 8.0
    deterioration_speed_loss: float = 0.2
    deterioration_process_drift: float = 0.8
    outages_per_device_week: float = 1.0
    power_share: float = 0.3
    order_lead_days: int = 1
    order_fill: float = 0.97
    ship_hour: int = 22
    accept_delay_h: int = 10
    sensor_noise: float = 0.15
    sensor_drift: float = 0.25
    gtin: str = "09506000134352"
    #: the measured dimensions (energy, stock, camera, equipment age): simulation.factories' docstring
    energy_noise: float = 0.02
    camera_detect: float = 0.98
    camera_false_reject: float = 0.003
    raw_stock_days: float = 10.0
    raw_delivery_every_days: int = 7
    finished_stock_days: float = 1.5
    stock_count_hour: int = 6
    stock_count_error: float = 0.005
    #: a supplier that inflates its machines' reported good units by ``inflate_output_factor`` from
    #: day ``inflate_output_from_day`` (0-based) on; the meters, the camera and the lots stay true
    inflate_output_from_day: int | None = None
    inflate_output_factor: float = 1.4

    def __post_init__(self) -> None:
        if not self.factory_id or len(self.factory_id) > 24 or not self.factory_id.replace("-", "").isalnum():
            raise SimulatorError(f"factory_id must be 1..24 letters, digits or '-', got {self.factory_id!r}")
        if not 1 <= self.lines <= 4:
            raise SimulatorError(f"lines must be 1..4, got {self.lines}")
        if self.interval_s <= 0 or 86_400 % self.interval_s:
            raise SimulatorError(f"interval_s must divide 86400, got {self.interval_s}")
        if self.kind.n_parameters < 200 or self.kind.n_parameters > STATIONS * PARAMS_PER_STATION:
            raise SimulatorError("a line kind has 200 .. 203 process parameters")
        if self.inflate_output_from_day is not None and (
            self.inflate_output_from_day < 0 or self.inflate_output_factor < 1
        ):
            raise SimulatorError("inflate_output_from_day must be >= 0 and inflate_output_factor >= 1")

    def line_ids(self) -> list[str]:
        return [f"{self.factory_id}-l{i + 1}" for i in range(self.lines)]

    def controller_id(self, line_id: str) -> str:
        return f"{line_id}-ctl"

    def station_ids(self, line_id: str) -> list[str]:
        return [f"{line_id}-st{k + 1}" for k in range(STATIONS)]

    def qc_id(self, line_id: str) -> str:
        return f"{line_id}-qc"

    def meter_id(self, line_id: str) -> str:
        """The line's kWh meter."""
        return f"{line_id}-kwh"

    def camera_id(self, line_id: str) -> str:
        """The line's end-of-line inspection camera."""
        return f"{line_id}-cam"

    def stock_counter_id(self) -> str:
        """The factory's stock-count station (raw material and finished goods)."""
        return f"{self.factory_id}-stock"

    def scheme_of(self, device_id: str) -> str:
        """Controllers, stations, meters and the stock counter carry P-256 secure elements; the QC test
        station and the inspection camera are PC gateways with Ethereum (secp256k1) keys, cheap to
        verify on chain where lots are certified."""
        return "secp256k1" if device_id.endswith(("-qc", "-cam")) else "p256"

    def device_ids(self) -> list[str]:
        out: list[str] = []
        for line in self.line_ids():
            out.append(self.controller_id(line))
            out.extend(self.station_ids(line))
            out.append(self.qc_id(line))
            out.append(self.meter_id(line))
            out.append(self.camera_id(line))
        out.append(self.stock_counter_id())
        return out

    def meter_pairs(self) -> list[tuple[str, str]]:
        """``(meter, machine it meters)`` per line: the factory profile's ``meters``."""
        return [(self.meter_id(line), self.controller_id(line)) for line in self.line_ids()]

    def camera_ids(self) -> list[str]:
        return [self.camera_id(line) for line in self.line_ids()]

    def stock_counter_ids(self) -> list[str]:
        return [self.stock_counter_id()]

    def machine_ids(self) -> list[str]:
        """The devices the factory profile is computed from (the line controllers)."""
        return [self.controller_id(line) for line in self.line_ids()]

    def nominal_made_daily(self) -> float:
        """Units made per day (every grade) when healthy: what the raw material is sized on."""
        slots = 86_400 // self.interval_s
        running = slots - 3_600 // self.interval_s
        availability = 1.0 / (1.0 + self.failure_rate * self.repair_intervals)
        return self.lines * running * availability * self.kind.units_per_interval * self.speed

    def nominal_daily(self) -> float:
        """Sellable units per day the factory would sustain when healthy (the order basis)."""
        slots = 86_400 // self.interval_s
        running = slots - 3_600 // self.interval_s
        availability = 1.0 / (1.0 + self.failure_rate * self.repair_intervals)
        sellable = self.kind.target_yield + (1 - self.kind.target_yield) * self.kind.rework_share
        return self.lines * running * availability * self.kind.units_per_interval * self.speed * sellable
