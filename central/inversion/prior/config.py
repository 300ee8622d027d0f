"""The prior builder's TOML configuration (pydantic; unknown keys are errors, relative paths resolve
against the config file's folder). See configs/inventory/prior.example.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ghgnet.config import RelPath, StrictModel, load_model

from ..config import Period

EMISSION_UNITS_KG: dict[str, float] = {"kg/yr": 1.0, "t/yr": 1e3, "kt/yr": 1e6, "Mt/yr": 1e9}
"""Annual amounts of the species in the inventory, in kg per unit."""


class CityGrid(StrictModel):
    """The prior's (and the inversion's) regular lat/lon grid, by its south-west corner."""

    south: float = Field(ge=-90, le=90, description="southern edge of the first row, degrees")
    west: float = Field(ge=-180, le=360, description="western edge of the first column, degrees")
    dlat: float = Field(gt=0, description="cell height, degrees")
    dlon: float = Field(gt=0, description="cell width, degrees")
    ny: int = Field(ge=2, le=2000)
    nx: int = Field(ge=2, le=2000)

    def centres(self) -> tuple:
        import numpy as np

        lat = self.south + (np.arange(self.ny) + 0.5) * self.dlat
        lon = self.west + (np.arange(self.nx) + 0.5) * self.dlon
        return lat, lon


class PointSources(StrictModel):
    """CSV: id,name,lat,lon,sector,annual_emission,stack_height_m (emission in `emission_units`)."""

    file: RelPath


class AreaSource(StrictModel):
    """A sector's annual total spread by a proxy: a netCDF grid (per-cell amounts such as population
    or road km, on any regular lat/lon grid covering the city) or GeoJSON features (polygons by
    overlap area, lines by length in each cell, each weighted by a property such as population)."""

    sector: str
    total: float = Field(ge=0, description="annual emission of the sector, emission_units")
    netcdf: RelPath | None = None
    variable: str = Field("proxy", description="netCDF proxy variable (lat, lon)")
    geojson: RelPath | None = None
    weight_property: str | None = Field(
        None, description="GeoJSON feature property weighting each feature (unset: every feature by its own area "
                          "or length alone)")

    @model_validator(mode="after")
    def _one_proxy(self) -> "AreaSource":
        if (self.netcdf is None) == (self.geojson is None):
            raise ValueError("give exactly one of netcdf or geojson")
        return self


class GriddedInventory(StrictModel):
    """A (coarser) gridded inventory, regridded conservatively: `variables` maps sector -> netCDF
    variable (lat, lon); units from `units` or the variable's attribute: a flux (kg m-2 s-1,
    mol m-2 s-1, umol m-2 s-1: the year's mean) or an annual amount per cell (kg/yr, t/yr, kt/yr, Mt/yr)."""

    file: RelPath
    variables: dict[str, str] = Field(min_length=1)
    units: str | None = None


class Profile(StrictModel):
    """Temporal factors of a sector; each list is relative (normalised here). `like` starts from a
    named default (profiles.DEFAULT_PROFILES); explicit lists override it."""

    like: str | None = None
    month: list[float] | None = Field(None, min_length=12, max_length=12, description="January..December")
    weekday: list[float] | None = Field(None, min_length=7, max_length=7, description="Monday..Sunday")
    hour: list[float] | None = Field(None, min_length=24, max_length=24, description="local hours 0..23")


class Region(StrictModel):
    """The city's boundary (GeoJSON polygons): region(lat, lon) = fraction of each cell inside."""

    geojson: RelPath


class PriorBuildConfig(StrictModel):
    species: str = "CO2"
    molar_mass_g_per_mol: float | None = Field(None, gt=0)
    emission_units: Literal["kg/yr", "t/yr", "kt/yr", "Mt/yr"] = "t/yr"
    sectors: list[str] = Field(min_length=1)
    grid: CityGrid
    period: Period
    utc_offset_hours: float = Field(0.0, ge=-14, le=14, description="local time = UTC + this (weekday and hour factors)")
    point_sources: list[PointSources] = Field(default_factory=list)
    area_sources: list[AreaSource] = Field(default_factory=list)
    gridded: list[GriddedInventory] = Field(default_factory=list)
    profiles: dict[str, Profile] = Field(default_factory=dict)
    region: Region | None = None

    @model_validator(mode="after")
    def _sectors(self) -> "PriorBuildConfig":
        if len(set(self.sectors)) != len(self.sectors):
            raise ValueError("sectors are listed twice")
        named = [a.sector for a in self.area_sources] + [s for g in self.gridded for s in g.variables]
        unknown = sorted(set(named) - set(self.sectors))
        if unknown:
            raise ValueError(f"unknown sector(s) {', '.join(unknown)} (sectors: {', '.join(self.sectors)})")
        extra = sorted(set(self.profiles) - set(self.sectors))
        if extra:
            raise ValueError(f"[profiles] for unknown sector(s) {', '.join(extra)}")
        if not (self.point_sources or self.area_sources or self.gridded):
            raise ValueError("no inventory: give point_sources, area_sources or gridded")
        hours = self.period.step_hours
        if abs(hours - round(hours)) > 1e-9:
            raise ValueError("period.step_hours must be whole hours (profiles are hourly)")
        return self


def load_prior_config(path: Path) -> PriorBuildConfig:
    """Load and validate; raises ghgnet.config.ConfigError (`FILE: field.path: message`)."""
    return load_model(PriorBuildConfig, path)
