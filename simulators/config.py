"""The simulator bench's configuration (TOML): which simulated instruments to serve, and where.

Loaded through station_agent.configbase: unknown keys are errors, every error reads
`FILE: field.path: message`, relative paths resolve against the config file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from station_agent.configbase import RelPath, StrictModel, load_model

DEFAULT_COLUMNS = ["CO2", "CO2_dry", "CH4", "CH4_dry", "CO", "H2O", "CavityPressure", "CavityTemp"]


class DiurnalGasConfig(StrictModel):
    """True dry mole fractions at the inlet: a base value plus an optional daily cosine.

    Units: co2 ppm, ch4 ppb, co ppb, h2o %. `diurnal_amplitude` is per quantity (same units);
    the cycle peaks at `peak_hour_utc`.
    """

    co2: float = Field(default=420.0, ge=0, description="dry CO2, ppm")
    ch4: float = Field(default=2000.0, ge=0, description="dry CH4, ppb")
    co: float = Field(default=150.0, ge=0, description="dry CO, ppb")
    h2o: float = Field(default=1.2, ge=0, description="water vapour, %")
    diurnal_amplitude: dict[Literal["co2", "ch4", "co", "h2o"], float] = Field(
        default_factory=dict, description="half peak-to-peak of the daily cycle, per quantity"
    )
    peak_hour_utc: float = Field(default=6.0, ge=0, lt=24, description="hour of the daily maximum")


class NoiseConfig(StrictModel):
    """Standard deviation of the simulated measurement noise (co2 ppm, ch4/co ppb, h2o %)."""

    co2: float = Field(default=0.05, ge=0)
    ch4: float = Field(default=0.5, ge=0)
    co: float = Field(default=5.0, ge=0)
    h2o: float = Field(default=0.002, ge=0)


class PicarroInstrument(StrictModel):
    """One simulated Picarro analyzer, served on TCP and optionally on a pty."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    model: Literal["picarro.g2401", "picarro.g2301"] = Field(
        description="driver name the station uses for it"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="TCP port; 0 = any free port")
    pty_link: RelPath | None = Field(
        default=None, description="symlink to the simulator's pty (a stable serial device path)"
    )
    seed: int = 0
    columns: list[str] = Field(default_factory=lambda: list(DEFAULT_COLUMNS), min_length=1)
    timezone: str = Field(default="UTC", description="zone of the simulated analyzer clock")
    record_interval_s: tuple[float, float] = (1.0, 3.0)
    record_format: Literal["per_label", "single_time"] = Field(
        default="per_label",
        description="per_label: `time;value;` per label (older host software); single_time: time once",
    )
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    gas: DiurnalGasConfig = Field(default_factory=DiurnalGasConfig)

    @field_validator("columns")
    @classmethod
    def _columns_known(cls, columns: list[str]) -> list[str]:
        from simulators.picarro.g2401 import SUPPORTED_LABELS

        unknown = [c for c in columns if c not in SUPPORTED_LABELS]
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; known: {', '.join(SUPPORTED_LABELS)}")
        return columns

    @model_validator(mode="after")
    def _no_co_on_g2301(self) -> "PicarroInstrument":
        if self.model == "picarro.g2301" and "CO" in self.columns:
            raise ValueError("a G2301 measures no CO: remove 'CO' from columns")
        return self


class ControlConfig(StrictModel):
    """The bench's JSON-lines control port (fault injection and ledger counts)."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 = any free port")


class BenchConfig(StrictModel):
    control: ControlConfig = Field(default_factory=ControlConfig)
    instruments: list[PicarroInstrument] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> "BenchConfig":
        ids = [i.id for i in self.instruments]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"instrument id(s) used twice: {', '.join(dupes)}")
        return self


def load_bench_config(path: str | Path) -> BenchConfig:
    """Load and validate a bench file; raises station_agent.configbase.ConfigError."""
    return load_model(BenchConfig, path)
