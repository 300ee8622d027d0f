"""How central keeps a minute record's species values: one JSON text on the minute row.

Schema 4 (appended to the migrations in sql.py). Up to schema 3 each species of a minute was a
row of its own (`minute_value`, keyed by station, seq, species): three or four rows and index
entries per minute record, about half of what storing a minute cost. Now the minute row carries
`species`, the same object the station sends and keeps in its own store:

    {"co2": {"mean": 420.1, "std": 0.05, "n": 55, "raw_mean": 419.8, "cal_mean": 420.1, "u": 0.03}, ...}

`u` (issue 21): the standard uncertainty of cal_mean as the station computed it
(ghgnet.processing.uncertainty), null while unknown; a minute stored before it reads as None. It
lives in this text, so it needed no migration of the minute table.

A new row keeps the object as the JSON text the station sent when the lean decoder took the batch
(validated, not re-encoded: central/lean_minutes.py), otherwise as msgspec writes the validated
values; the migration wrote Python's json. Either way a value reads back bit for bit as received:
a JSON number reads as the nearest double wherever it is parsed, and both encoders write the
shortest text that reads back as the same double. `load_species` reads the float fields as
floats, so an integer a station wrote there (420 for 420.0) reads back as the float the wire
models make of it. The migration moved every stored value in Python for that reason: SQL's own
float-to-text conversion (SQLite prints 15 significant digits) would round them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from ghgnet.wire import SpeciesStats

FIELDS = ("mean", "std", "n", "raw_mean", "cal_mean", "u")
_PAGE = 5000
"""Minute records moved per round trip by the migration."""


@dataclass(frozen=True, slots=True)
class StoredSpecies:
    mean: float | None
    std: float | None
    n: int
    raw_mean: float | None
    cal_mean: float | None
    u: float | None = None


def _as_fields(value: Any) -> dict[str, Any]:
    if isinstance(value, SpeciesStats):  # the wire model (pydantic path): the lean struct's fields
        return {f: getattr(value, f) for f in FIELDS}
    raise TypeError(f"cannot store {type(value).__name__} as species values")


_encode = msgspec.json.Encoder(enc_hook=_as_fields).encode
"""msgspec writes the lean decoder's structs itself, and the wire models through `_as_fields`,
in the same field order: either gives the same text."""


def species_json(species: Mapping[str, Any]) -> str:
    """The `species` text of a minute."""
    return _encode(species).decode()


def _float(v: Any) -> float | None:
    return v if v is None or type(v) is float else float(v)


def load_species(text: str) -> dict[str, StoredSpecies]:
    """A stored `species` text, species in name order (as schema 3 read them)."""
    values = json.loads(text)
    out = {}
    for sp in sorted(values):
        v = values[sp]
        out[sp] = StoredSpecies(_float(v.get("mean")), _float(v.get("std")), v.get("n"),
                                _float(v.get("raw_mean")), _float(v.get("cal_mean")), _float(v.get("u")))
    return out


def species_names(text: str) -> list[str]:
    return list(json.loads(text))


def migration_v4(types: dict[str, str]) -> list[str | Callable[[Any], None]]:
    """Steps of schema 4: SQL statements, and `_move_values`, which runs in the same transaction."""
    return [
        f"ALTER TABLE minute ADD COLUMN species {types['json']} NOT NULL DEFAULT '{{}}'",
        _move_values,
        "DROP TABLE minute_value",
    ]


def _move_values(store: Any) -> None:
    """Write every minute's `minute_value` rows into its `species` text, a page of minutes at a
    time (memory stays bounded on a store of years), in (station, seq) order."""
    after: tuple[str, int] = ("", 0)
    while True:
        keys = store._query(
            "SELECT station, seq FROM minute WHERE (station, seq) > (?, ?) ORDER BY station, seq LIMIT ?",
            (*after, _PAGE),
        )
        if not keys:
            return
        last = (keys[-1][0], keys[-1][1])
        rows = store._query(
            "SELECT station, seq, species, mean, std, n, raw_mean, cal_mean FROM minute_value "
            "WHERE (station, seq) > (?, ?) AND (station, seq) <= (?, ?) ORDER BY station, seq, species",
            (*after, *last),
        )
        grouped: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
        for r in rows:
            grouped.setdefault((r[0], r[1]), {})[r[2]] = dict(zip(FIELDS[:5], r[3:8]))
        store._executemany(
            store._sql("UPDATE minute SET species = ? WHERE station = ? AND seq = ?"),
            [(json.dumps(values, separators=(",", ":"), allow_nan=False), st, seq)
             for (st, seq), values in grouped.items()],
        )
        after = last
