"""The medium-precision data level (issue 21): sensor models fitted by central/medium_precision/
and the corrected hourly values they give, with their uncertainty. Its own tables, apart from the
minutes and the hourly aggregates of the high-precision chain, so that a corrected low-cost value
is never mistaken for a calibrated one.

Migration appended in sql.py (`migration_medium_precision`); both SQL backends share this mixin,
which only uses the backend primitives of `SqlStore`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MP_HOURLY_COLUMNS = ("station", "device", "species", "hour", "raw_mean", "corrected", "uncertainty",
                     "n_minutes", "reference", "temperature", "humidity", "pressure", "model_id",
                     "computed_at")


def migration_medium_precision(types: dict[str, str]) -> list[str]:
    t = types
    return [
        f"""CREATE TABLE mp_model (
            id {t['text']} PRIMARY KEY, station {t['text']} NOT NULL, device {t['text']} NOT NULL,
            species {t['text']} NOT NULL, reference {t['text']} NOT NULL, mode {t['text']} NOT NULL,
            fit_start {t['time']} NOT NULL, fit_end {t['time']} NOT NULL, model {t['json']} NOT NULL,
            residuals {t['json']} NOT NULL, created_at {t['time']} NOT NULL)""",
        "CREATE INDEX mp_model_station ON mp_model (station, device, species, created_at)",
        f"""CREATE TABLE mp_hourly (
            station {t['text']} NOT NULL, device {t['text']} NOT NULL, species {t['text']} NOT NULL,
            hour {t['time']} NOT NULL, raw_mean {t['real']} NOT NULL, corrected {t['real']},
            uncertainty {t['real']}, n_minutes {t['int']} NOT NULL, reference {t['real']},
            temperature {t['real']}, humidity {t['real']}, pressure {t['real']},
            model_id {t['text']} NOT NULL, computed_at {t['time']} NOT NULL,
            PRIMARY KEY (station, device, species, hour))""",
    ]


@dataclass(frozen=True, slots=True)
class MpModelRow:
    """A fitted sensor model: `model` the fit (central.medium_precision.fit.SensorModel.to_json),
    `residuals` the report's statistics (overall and per period)."""

    id: str
    station: str
    device: str
    species: str
    reference: str
    mode: str
    fit_start: datetime
    fit_end: datetime
    model: dict[str, Any]
    residuals: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MpHourRow:
    """One corrected hour (start of the hour, UTC): the sensor's raw hourly mean, the corrected
    value and its standard uncertainty (ppm), the minutes behind it, the reference's hourly mean
    where there is one, the environment means, and the model that corrected it."""

    station: str
    device: str
    species: str
    hour: datetime
    raw_mean: float
    corrected: float | None
    uncertainty: float | None
    n_minutes: int
    reference: float | None
    temperature: float | None
    humidity: float | None
    pressure: float | None
    model_id: str
    computed_at: datetime


def _num(v: Any) -> float | None:
    return None if v is None or v != v else float(v)


class MediumPrecisionStoreMixin:
    """Methods added to SqlStore (which supplies _execute, _query, _sql, _t, _from_t, ...)."""

    def put_mp_model(self, row: MpModelRow) -> None:
        self._begin()  # type: ignore[attr-defined]
        try:
            self._execute(self._sql(  # type: ignore[attr-defined]
                "INSERT INTO mp_model (id, station, device, species, reference, mode, fit_start, fit_end, model, "
                "residuals, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                (row.id, row.station, row.device, row.species, row.reference, row.mode,
                 self._t(row.fit_start), self._t(row.fit_end), json.dumps(row.model),  # type: ignore[attr-defined]
                 json.dumps(row.residuals), self._t(row.created_at)))  # type: ignore[attr-defined]
            self._commit()  # type: ignore[attr-defined]
        except BaseException:
            self._rollback()  # type: ignore[attr-defined]
            raise

    def mp_models(self, station: str | None = None) -> list[MpModelRow]:
        """Every stored model (of `station`), oldest first."""
        sql = ("SELECT id, station, device, species, reference, mode, fit_start, fit_end, model, residuals, "
               "created_at FROM mp_model")
        params: list[Any] = []
        if station is not None:
            sql += " WHERE station = ?"
            params.append(station)
        rows = self._query(sql + " ORDER BY created_at, id", params)  # type: ignore[attr-defined]
        f = self._from_t  # type: ignore[attr-defined]
        return [MpModelRow(r[0], r[1], r[2], r[3], r[4], r[5], f(r[6]), f(r[7]), json.loads(r[8]), json.loads(r[9]),
                           f(r[10])) for r in rows]

    def replace_mp_hours(self, station: str, device: str, species: str, start: datetime, end: datetime,
                         rows: Sequence[MpHourRow]) -> None:
        """Replace the corrected hours of (station, device, species) with start <= hour < end."""
        t = self._t  # type: ignore[attr-defined]
        self._begin()  # type: ignore[attr-defined]
        try:
            self._execute(self._sql(  # type: ignore[attr-defined]
                "DELETE FROM mp_hourly WHERE station = ? AND device = ? AND species = ? AND hour >= ? AND hour < ?"),
                (station, device, species, t(start), t(end)))
            if rows:
                marks = ", ".join("?" * len(MP_HOURLY_COLUMNS))
                self._executemany(self._sql(  # type: ignore[attr-defined]
                    f"INSERT INTO mp_hourly ({', '.join(MP_HOURLY_COLUMNS)}) VALUES ({marks})"),
                    [(r.station, r.device, r.species, t(r.hour), r.raw_mean, _num(r.corrected), _num(r.uncertainty),
                      r.n_minutes, _num(r.reference), _num(r.temperature), _num(r.humidity), _num(r.pressure),
                      r.model_id, t(r.computed_at)) for r in rows])
            self._commit()  # type: ignore[attr-defined]
        except BaseException:
            self._rollback()  # type: ignore[attr-defined]
            raise

    def mp_hours(self, station: str, start: datetime, end: datetime, device: str | None = None) -> list[MpHourRow]:
        """Corrected hours of `station` with start <= hour < end, by device, species, hour."""
        sql = (f"SELECT {', '.join(MP_HOURLY_COLUMNS)} FROM mp_hourly WHERE station = ? AND hour >= ? AND hour < ?")
        params: list[Any] = [station, self._t(start), self._t(end)]  # type: ignore[attr-defined]
        if device is not None:
            sql += " AND device = ?"
            params.append(device)
        rows = self._query(sql + " ORDER BY device, species, hour", params)  # type: ignore[attr-defined]
        f = self._from_t  # type: ignore[attr-defined]
        return [MpHourRow(r[0], r[1], r[2], f(r[3]), r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], f(r[13]))
                for r in rows]
