"""LI-COR trace gas analyzer `.data` files (LI-7810, LI-7815, LI-7820): read, check, import.

A file (LI-COR manuals, "Working with data"; sample files in Qepanna/goFlux inst/extdata/LI7810
and LI7820) is tab-separated text: header lines `Model:`, `SN:`, `Software Version:`,
`Timestamp:`, `Timezone:` (label, tab, value), then `DATAH` (column names), `DATAU` (their units)
and `DATA` rows. The last column, CHK, is the byte sum of the row up to and including the tab
before it, mod 256 (`DATA` and every tab included), written right-aligned in three characters;
checked against the sample files, where every row matches.

A row whose CHK does not match, or whose field count differs from DATAH, is refused and named in
`problems` with its line number; every other row is kept. A second DATAH (files joined together)
starts a new block with its own columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from drivers.licor.li78xx import (
    NOT_VALUES,
    STATUS_FIELD,
    TIME_FIELDS,
    UNIT_FACTORS,
    LicorConfig,
    LicorDiag,
    record_time,
)
from drivers.reading import Reading, unit_of

HEADER_LABELS = ("Model", "SN", "Software Version", "Timestamp", "Timezone")
CHK_WIDTH = 3


def checksum(row_prefix: bytes) -> int:
    """CHK of a row: the byte sum of `row_prefix` (the row up to and including the tab before
    CHK) mod 256."""
    return sum(row_prefix) % 256


def data_row(fields: Iterable[str]) -> str:
    """A complete `DATA` row for the given field texts (CHK appended), without a line end."""
    prefix = "DATA\t" + "".join(f + "\t" for f in fields)
    return prefix + f"{checksum(prefix.encode()):>{CHK_WIDTH}}"


@dataclass
class DataRecord:
    """One checked row: its line number and its fields by column name (texts)."""

    line: int
    fields: dict[str, str]


@dataclass
class DataFile:
    """What a file held: its header, the column names and units of its (last) DATAH block, the
    rows that passed, and each refused line named in `problems`."""

    name: str
    header: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    records: list[DataRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_data(raw: bytes, name: str = "<data>") -> DataFile:
    """Parse the bytes of a `.data` file (CHK is computed on the bytes as written)."""
    out = DataFile(name)
    for number, line in enumerate(raw.splitlines(), start=1):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        label, _, rest = line.partition(b"\t")
        where = f"{name}:{number}"
        if label == b"DATAH":
            out.columns = _text(rest).split("\t")
            out.units = {}
        elif label == b"DATAU":
            out.units = dict(zip(out.columns, _text(rest).split("\t"), strict=False))
        elif label == b"DATA":
            if not out.columns:
                out.problems.append(f"{where}: DATA row before any DATAH line refused: {_text(line)[:120]!r}")
                continue
            cut = line.rfind(b"\t")
            texts = _text(rest).split("\t")
            if len(texts) != len(out.columns):
                out.problems.append(f"{where}: {len(texts)} fields for {len(out.columns)} columns, refused: "
                                    f"{_text(line)[:120]!r}")
                continue
            try:
                chk = int(texts[-1])
            except ValueError:
                out.problems.append(f"{where}: CHK {texts[-1]!r} is not a number, refused")
                continue
            expected = checksum(line[: cut + 1])
            if chk != expected:
                out.problems.append(f"{where}: CHK {chk} where the row sums to {expected}, refused: "
                                    f"{_text(line)[:120]!r}")
                continue
            out.records.append(DataRecord(number, dict(zip(out.columns, texts, strict=True))))
        elif label.endswith(b":") and not out.columns:
            out.header[_text(label[:-1])] = _text(rest).strip()
        else:
            out.problems.append(f"{where}: not a header, DATAH, DATAU or DATA line, skipped: {_text(line)[:120]!r}")
    return out


def read_data_file(path: str | Path) -> DataFile:
    path = Path(path)
    return parse_data(path.read_bytes(), str(path))


def readings(data: DataFile, config: LicorConfig) -> tuple[list[Reading], list[str]]:
    """The rows of `data` as the driver configured by `config` would read them (same quantities,
    units converted from the file's DATAU), for importing a site's files; with the problems."""
    problems = list(data.problems)
    plan: dict[str, tuple[str, float]] = {}
    for col in data.columns:
        quantity = config.quantity(col)
        if quantity is None or col in NOT_VALUES:
            continue
        unit = data.units.get(col, "")
        factor = UNIT_FACTORS.get((unit, unit_of(quantity)))
        if factor is None:
            problems.append(f"{data.name}: {col}: cannot convert {unit!r} to {unit_of(quantity)}; column left out")
            continue
        plan[col] = (quantity, factor)
    ignored = frozenset(config.diag_ignore_bits)
    out: list[Reading] = []
    for rec in data.records:
        try:
            time: datetime = record_time({k: float(v) for k, v in rec.fields.items() if k in TIME_FIELDS})
            values = {q: round(float(rec.fields[c]) * f, 9) for c, (q, f) in plan.items() if rec.fields[c].strip()}
            diag = LicorDiag(int(rec.fields[STATUS_FIELD]), ignored) if STATUS_FIELD in rec.fields else None
        except ValueError as why:
            problems.append(f"{data.name}:{rec.line}: row skipped ({why})")
            continue
        out.append(Reading(time=time, device=config.id, values=values, status=diag.word if diag else None,
                           status_ok=diag.ok if diag else True, status_flags=diag.flags if diag else ()))
    return out, problems

