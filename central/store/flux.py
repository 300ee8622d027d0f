"""Half-hourly eddy-covariance fluxes at central (schema 7): table `flux`, one row per averaging
period, keyed by (station, seq, store) like every record table, so a redelivery is stored once.

The columns a query filters or sums on are their own (start `time`, the three flags, the fluxes,
u*); the whole record is kept as JSON in `record` (ghgnet.wire.FluxWire without its seq), so a
field added to the record later needs no new column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ghgnet.wire import FluxWire

FLUX_COLUMNS: list[tuple[str, str]] = [
    ("station", "text"), ("seq", "bigint"), ("time", "time"), ("duration_s", "real"), ("path", "text"),
    ("flag_h", "int"), ("flag_le", "int"), ("flag_co2", "int"), ("h_w_m2", "real"), ("le_w_m2", "real"),
    ("co2_flux_umol_m2_s", "real"), ("h2o_flux_mmol_m2_s", "real"), ("ustar_ms", "real"),
    ("record", "json"), ("received_at", "time"),
]
"""The flux table's columns as the row builder makes them (`store` is added last, as for every
record table)."""

_NOT_NULL = {"station", "seq", "time", "duration_s", "path", "flag_h", "flag_le", "flag_co2", "record",
             "received_at", "store"}


def migration_flux(types: dict[str, str]) -> list[str]:
    """The steps that make the flux table (append-only: never edit once released)."""
    cols = ", ".join(f"{c} {types[t]}{' NOT NULL' if c in _NOT_NULL else ''}"
                     for c, t in FLUX_COLUMNS + [("store", "text")])
    return [f"CREATE TABLE flux ({cols}, PRIMARY KEY (station, seq, store))",
            "CREATE INDEX flux_time ON flux (station, time)"]


def flux_rows(station: str, recs: list[FluxWire], t: Callable[[Any], Any], received: Any,
              dumps: Callable[[Any], str]) -> list[tuple]:
    """Rows (FLUX_COLUMNS) of a flux batch's records."""
    return [
        (station, r.seq, t(r.start), r.duration_s, r.path, r.flag_h, r.flag_le, r.flag_co2, r.h_w_m2, r.le_w_m2,
         r.co2_flux_umol_m2_s, r.h2o_flux_mmol_m2_s, r.ustar_ms,
         dumps(r.model_dump(mode="json", exclude={"seq"})), received)
        for r in recs
    ]
