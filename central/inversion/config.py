"""The inversion's TOML configuration (pydantic; unknown keys are errors, relative paths resolve
against the config file's folder). See configs/inversion.example.toml for a working example."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ghgnet.config import RelPath, StrictModel, load_model


class Period(StrictModel):
    """The flux period: regular steps from `start` (UTC)."""

    start: str = Field(description="first flux step start, ISO 8601 UTC, e.g. 2024-07-01T00:00:00Z")
    days: float = Field(gt=0, description="length of the period, days")
    step_hours: float = Field(24.0, gt=0, description="length of one flux step, hours")


class Prior(StrictModel):
    """Prior fluxes netCDF: `variable(time, lat, lon)` or `(sector, time, lat, lon)` with a units
    attribute (kg m-2 s-1, mol m-2 s-1 or umol m-2 s-1); time in the file must match the steps."""

    file: RelPath
    variable: str = "flux"
    region_file: RelPath = Field(description="netCDF with the region (city) mask on the same grid")
    region_variable: str = "region"


class StationPlace(StrictModel):
    id: str
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=360)


class StoreSource(StrictModel):
    """Hourly means read from central's store (`[observations] source = "store"`); see
    central/inversion/store_source.py for the selection and the measurement-uncertainty rule."""

    central_config: RelPath = Field(
        description="central TOML config: its [storage] opens the store, its [stations.<id>] give each "
        "station's timezone (afternoon window), place, role and inlet heights")
    species: str | None = Field(
        None, description="species as central stores it (co2, ch4, ...); unset: the inversion's species, lower case")
    stations: list[str] = Field(
        default_factory=list, description="stations to read (background ones are added); empty: every station in the store")
    inlets: dict[str, str] = Field(
        default_factory=dict, description="inlet per station, e.g. {tower-a = \"inlet:60m\"}; unset: the highest inlet")
    flags: list[str] = Field(
        default_factory=lambda: ["U", "O"], min_length=1,
        description="hourly flags taken as valid (U automatic, O after manual QC)")
    measurement_ppm: float = Field(
        0.1, ge=0, description="measurement 1-sigma (ppm) of a station without enough target runs")
    from_targets: bool = Field(True, description="measurement 1-sigma from the station's target-gas biases")
    target_statistic: Literal["rms", "std"] = Field(
        "rms", description="rms: sqrt(mean(bias^2)), offset and scatter; std: scatter only (ddof = 1)")
    target_window_days: float = Field(
        30.0, gt=0, description="target runs from this many days before the period start to its end count")
    target_min_runs: int = Field(3, ge=2, description="fewer target runs: measurement_ppm is used")
    version: Literal["latest", "nrt"] = Field(
        "latest", description="data version of the hourly means: latest (each hour's newest, reprocessed when it "
        "was) or nrt (near real time)")


class Observations(StrictModel):
    source: Literal["csv", "store"] = Field(
        "csv", description="csv: the `file` table; store: hourly means from central's store ([observations.store])")
    file: RelPath | None = Field(None, description="CSV: time_utc, station, value (ppm), uncertainty (ppm)")
    store: StoreSource | None = None
    utc_offset_hours: float = Field(
        0.0, ge=-14, le=14, description="csv: local time = UTC + this (store: each station's timezone)")
    afternoon_first_hour: int = Field(12, ge=0, le=23)
    afternoon_last_hour: int = Field(16, ge=0, le=23)
    background_stations: list[str] = Field(default_factory=list)
    background_file: RelPath | None = Field(None, description="background series CSV, same columns")
    stations: list[StationPlace] = Field(default_factory=list, description="places, for STILT files")

    @model_validator(mode="after")
    def _consistent(self) -> "Observations":
        if self.source == "csv":
            if self.file is None:
                raise ValueError("source \"csv\" needs file (or use source = \"store\")")
            if self.store is not None:
                raise ValueError("[observations.store] is only read with source = \"store\"")
            if bool(self.background_stations) == (self.background_file is not None):
                raise ValueError("give exactly one of background_stations or background_file")
        else:
            if self.store is None:
                raise ValueError("source \"store\" needs [observations.store] with central_config")
            if self.file is not None:
                raise ValueError("file is the csv source's table; remove it with source = \"store\"")
            if "utc_offset_hours" in self.model_fields_set:
                raise ValueError("source \"store\" uses each station's timezone from the central config; "
                                 "remove utc_offset_hours")
            if self.background_stations and self.background_file is not None:
                raise ValueError("give at most one of background_stations or background_file")
        if self.afternoon_last_hour < self.afternoon_first_hour:
            raise ValueError("afternoon_last_hour is before afternoon_first_hour")
        return self


class Footprints(StrictModel):
    format: Literal["combined", "stilt", "flexpart"] = "combined"
    path: RelPath = Field(description="combined netCDF file, or the folder of STILT *_foot.nc or FLEXPART "
                                      "grid_time_*.nc files (any lat/lon grid: regridded conservatively)")


class Covariance(StrictModel):
    prior_fraction: float = Field(0.5, ge=0, description="prior 1-sigma as a fraction of |prior flux|")
    prior_floor: float = Field(0.5, gt=0, description="smallest prior 1-sigma, umol m-2 s-1")
    length_km: float = Field(10.0, ge=0, description="spatial correlation length, km (0: none)")
    tau_days: float = Field(5.0, ge=0, description="temporal correlation time, days (0: none)")
    spatial_model: Literal["separable", "isotropic"] = "separable"
    mismatch_ppm: float = Field(1.0, ge=0, description="model-data mismatch 1-sigma, ppm")
    mismatch_tau_hours: float = Field(0.0, ge=0, description="mismatch correlation time within a station")
    min_uncertainty_ppm: float = Field(0.0, ge=0, description="floor on the measurement uncertainty")


class Twin(StrictModel):
    """Generate the inputs with the synthetic twin (into OUT/inputs) instead of reading files."""

    ny: int = Field(30, ge=4, le=400)
    nx: int = Field(30, ge=4, le=400)
    lat0: float = 39.75
    lon0: float = 116.25
    dlat: float = Field(0.01, gt=0)
    dlon: float = Field(0.01, gt=0)
    n_stations: int = Field(4, ge=1, le=50)
    utc_offset_hours: float = 8.0
    sectors: list[str] = Field(default_factory=lambda: ["total"])
    measurement_ppm: float = Field(0.1, gt=0)
    background_ppm: float = Field(0.2, gt=0)
    seed: int = 0


class Output(StrictModel):
    full_covariance: bool = Field(False, description="also write the full posterior covariance (small problems)")
    max_full_covariance_state: int = Field(6000, gt=0)
    inventory_totals: RelPath | None = Field(
        None, description="CSV month,sector,inventory_Mt: the inventory's own region totals for the comparison"
        " (unset: the prior's region totals)")


class InversionConfig(StrictModel):
    species: str = "CO2"
    molar_mass_g_per_mol: float | None = Field(None, gt=0)
    period: Period
    twin: Twin | None = None
    prior: Prior | None = None
    observations: Observations | None = None
    footprints: Footprints | None = None
    covariance: Covariance = Field(default_factory=Covariance)
    output: Output = Field(default_factory=Output)

    @model_validator(mode="after")
    def _inputs(self) -> "InversionConfig":
        given = [name for name in ("prior", "observations", "footprints") if getattr(self, name) is not None]
        if self.twin is not None and given:
            raise ValueError(f"[twin] generates the inputs: remove [{'], ['.join(given)}]")
        if self.twin is None and len(given) < 3:
            missing = [n for n in ("prior", "observations", "footprints") if n not in given]
            raise ValueError(f"missing [{'], ['.join(missing)}] (or use [twin] to generate inputs)")
        return self


def load_config(path: Path) -> InversionConfig:
    """Load and validate; raises ghgnet.config.ConfigError (`FILE: field.path: message`)."""
    return load_model(InversionConfig, path)
