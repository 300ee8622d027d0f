"""A flux site at the station: the sonic's and the analyzer's 10-20 Hz records kept as one block per
device and half hour, and each closed half hour processed into a `flux` record off the
acquisition and writer threads.

The writer thread hands `FluxRecorder.take(store, readings)` the flux devices' readings (they are
not stored as raw rows: 36,000 a half hour per device); closed periods are stored as blocks at once
(station_agent/storage/highrate_block.py) and queued (bounded) to the recorder's own thread, which
aligns and processes them (station_agent/processing/flux) and hands the record back to the writer
to store with its outbox entry. A period whose processing fails is logged and its blocks kept.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from ghgnet.config import StrictModel
from station_agent.acquisition.highrate import PeriodAccumulator, aligned_columns
from station_agent.processing.flux import FluxSettings, HalfHourFlux, block_from_columns, process_half_hour
from station_agent.storage.highrate_block import HighRateBlock
from station_agent.storage.store import StationStore

PERIOD_COLUMNS = {
    "open": {"u": ("sonic", "u"), "v": ("sonic", "v"), "w": ("sonic", "w"), "ts_c": ("sonic", "sonic_temp"),
             "co2": ("gas", "co2_density"), "h2o": ("gas", "h2o_density"), "pressure_hpa": ("gas", "pressure")},
    "closed": {"u": ("sonic", "u"), "v": ("sonic", "v"), "w": ("sonic", "w"), "ts_c": ("sonic", "sonic_temp"),
               "co2": ("gas", "co2"), "h2o": ("gas", "h2o_permil"), "pressure_hpa": ("gas", "pressure")},
}
"""Columns of the processing's FluxBlock from the drivers' value names (drivers/gill/windmaster.py,
drivers/licor/li7x00.py): open path molar densities (mmol m-3), closed path wet mole fractions."""


class FluxStationConfig(StrictModel):
    """`[flux]`: which devices make the eddy-covariance half hours, and how they are processed."""

    sonic: str = Field(description="id of the sonic anemometer ([[analyzers]])")
    analyzer: str = Field(description="id of the fast CO2/H2O analyzer ([[analyzers]])")
    rate_hz: float = Field(default=20.0, gt=0, le=20, description="records a second of both instruments")
    period_s: float = Field(default=1800.0, ge=60, le=7200, description="averaging period, s")
    path: Literal["open", "closed"] = "open"
    highrate_retention_days: float = Field(default=30.0, gt=0, description="days of 10-20 Hz blocks kept")


def period_columns(sonic: HighRateBlock, gas: HighRateBlock, cfg: FluxStationConfig) -> dict[str, Any]:
    """A period's columns in the processing's units (Ts K, pressure Pa, closed path H2O mmol/mol)."""
    if cfg.path == "closed":
        gas.columns.setdefault("h2o_permil", gas.columns["h2o"] * 10.0)  # % -> mmol/mol
    cols = aligned_columns(sonic, gas, cfg.period_s, PERIOD_COLUMNS[cfg.path])
    cols["ts"] = cols.pop("ts_c") + 273.15
    cols["pressure_pa"] = cols.pop("pressure_hpa") * 100.0
    return cols


class FluxRecorder:
    """Blocks and flux records of one flux site; `submit` stores through the writer (store -> None)."""

    def __init__(self, cfg: FluxStationConfig, submit: Callable[[Callable[[StationStore], None]], None],
                 now: Callable[[], Any], log: Any, maxsize: int = 8) -> None:
        self.cfg = cfg
        self.devices = frozenset((cfg.sonic, cfg.analyzer))
        self.submit = submit
        self.now = now
        self.log = log.bind(component="flux")
        self.accumulator = PeriodAccumulator((cfg.sonic, cfg.analyzer), cfg.rate_hz, cfg.period_s)
        self.settings = FluxSettings(path=cfg.path)
        self.retention = timedelta(days=cfg.highrate_retention_days)
        self.stored_records = 0
        self.fluxes = 0
        self._queue: queue.Queue[list[HighRateBlock] | None] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._run, name="flux-processing", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Process what is queued, then end the thread (the open period stays unprocessed)."""
        self._queue.put(None)
        self._thread.join(60)

    # -- the writer thread ----------------------------------------------------------------
    def take(self, store: StationStore, readings: list) -> None:
        self._store(store, self.accumulator.add(readings))

    def flush(self, store: StationStore) -> None:
        """Store the open period's blocks (at shutdown: its records are kept, not processed)."""
        for block in self.accumulator.close():
            store.put_highrate_block(block)
            self.stored_records += block.n

    def purge(self, store: StationStore) -> int:
        return store.purge_highrate(self.now() - self.retention)

    def _store(self, store: StationStore, blocks: list[HighRateBlock]) -> None:
        by_start: dict[Any, list[HighRateBlock]] = {}
        for block in blocks:
            self.stored_records += block.n
            # processed as stored: with the records kept before a restart within the period
            by_start.setdefault(block.start, []).append(store.put_highrate_block(block))
        for period in by_start.values():
            try:
                self._queue.put_nowait(period)
            except queue.Full:
                self.log.warning("flux_processing_behind", start=period[0].start.isoformat())

    # -- the processing thread ------------------------------------------------------------
    def _run(self) -> None:
        while (period := self._queue.get()) is not None:
            try:
                rec = self.process(period)
            except Exception as exc:  # a bad period is logged; its blocks stay stored
                self.log.error("flux_processing_failed", start=period[0].start.isoformat(), error=repr(exc))
                continue
            if rec is not None:
                payload, created = rec.wire_dict(), self.now()
                self.submit(lambda store, p=payload, c=created: store.insert_flux(p, c))
                self.fluxes += 1

    def process(self, period: list[HighRateBlock]) -> HalfHourFlux | None:
        """The flux record of a period's blocks; None when a device sent nothing in it."""
        blocks = {b.device: b for b in period}
        sonic, gas = blocks.get(self.cfg.sonic), blocks.get(self.cfg.analyzer)
        if sonic is None or gas is None:
            self.log.warning("flux_period_incomplete", start=period[0].start.isoformat(),
                             devices=sorted(blocks))
            return None
        cols = period_columns(sonic, gas, self.cfg)
        return process_half_hour(block_from_columns(sonic.start, self.cfg.rate_hz, cols), self.settings)
