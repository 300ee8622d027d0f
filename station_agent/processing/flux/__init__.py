"""Eddy-covariance processing of one averaging period (pure numpy: arrays in, a record out).

Entry point: `process_half_hour(block, settings)` -> `HalfHourFlux`. The steps, each in its own
module with its reference: despiking (despike), diagnostics filtering and tilt correction
(rotation), time lag (timelag), detrending (detrend), fluxes with the humidity and density
corrections (fluxes), spectral correction (spectral), steady-state and ITC tests and the 0/1/2
flag (quality), stability and footprint (footprint).
"""

from station_agent.processing.flux.columns import ColumnMap, block_from_columns, half_hours
from station_agent.processing.flux.pipeline import FluxBlock, FluxSettings, LagWindow, process_half_hour
from station_agent.processing.flux.record import HalfHourFlux
from station_agent.processing.flux.rotation import PlanarFit, fit_planar
from station_agent.processing.flux.spectral import SensorLayout

__all__ = ["ColumnMap", "FluxBlock", "FluxSettings", "HalfHourFlux", "LagWindow", "PlanarFit", "SensorLayout",
           "block_from_columns", "fit_planar", "half_hours", "process_half_hour"]
