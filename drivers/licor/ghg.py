"""LI-COR `.ghg` archives (SMARTFlux / LI-7500DS / LI-7200RS eddy-covariance systems): a zip of
`<name>.data` (high-rate records) and `<name>.metadata` (INI settings), optionally
`<name>-biomet.data` and `<name>-biomet.metadata` (DOMAIN.md).

A `.data` file (LI-COR EddyPro/SMARTFlux documentation; layout as shown for LI-7200 files in the
public docs of several readers) is tab-separated: header lines `Label:<TAB>value` (Model, SN,
Instrument, File Type, Software Version, Timestamp, Timezone), then `DATAH` with the column labels
(units in parentheses: `CO2 (mmol/m^3)`, `Aux 3 - W (m/s)`), then `DATA` rows. `Seconds` and
`Nanoseconds` are the Unix time (UTC) of each record; `Date` and `Time` are local time (the
`Timezone` line) and are kept as text. The trailing CHK column is kept as read, not checked
(its algorithm for these files is not confirmed here).
"""

from __future__ import annotations

import configparser
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drivers.rawtable import RawTable

_UNIT = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")


class GhgError(ValueError):
    """An archive that cannot be read; the message names the archive and the member."""


@dataclass(frozen=True, slots=True)
class GhgArchive:
    """The high-rate table, the metadata (section -> key -> value), and the biomet table if any."""

    data: RawTable
    metadata: dict[str, dict[str, str]]
    biomet: RawTable | None = None


def _unit(label: str) -> str:
    m = _UNIT.match(label)
    return m.group(2) if m else ""


def parse_data(text: str, where: str) -> RawTable:
    """A `.data` member's table (see the module's docstring); `where` names it in errors."""
    header: dict[str, str] = {}
    labels: list[str] | None = None
    rows: list[str] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if line.startswith("DATAH\t"):
            if labels is not None:
                raise GhgError(f"{where}: line {i}: a second DATAH (joined files are not supported)")
            labels = line.split("\t")[1:]
        elif line.startswith("DATA\t"):
            if labels is None:
                raise GhgError(f"{where}: line {i}: DATA before any DATAH")
            rows.append(line[5:])
        elif labels is None and ":" in line:
            key, _, value = line.partition(":")
            header[key.strip()] = value.strip()
    if labels is None:
        raise GhgError(f"{where}: no DATAH line (not a LI-COR .data file?)")
    cells_flat = "\t".join(rows).split("\t") if rows else []
    if len(cells_flat) != len(rows) * len(labels):
        for i, r in enumerate(rows):
            if r.count("\t") + 1 != len(labels):
                raise GhgError(f"{where}: DATA row {i + 1}: {r.count(chr(9)) + 1} fields, DATAH names {len(labels)}")
    cells = np.array(cells_flat, dtype=str).reshape(len(rows), len(labels))
    columns = {}
    for j, label in enumerate(labels):
        try:
            columns[label] = cells[:, j].astype(np.float64)
        except ValueError:
            columns[label] = cells[:, j]
    if "Seconds" in columns:
        ns = columns["Seconds"].astype(np.int64) * 1_000_000_000
        if "Nanoseconds" in columns:
            ns = ns + columns["Nanoseconds"].astype(np.int64)
        time = np.datetime64("1970-01-01T00:00:00", "ns") + ns.astype("timedelta64[ns]")
    else:
        time = np.full(len(rows), np.datetime64("NaT"), dtype="datetime64[ns]")
    names = [lb for lb in labels if lb not in ("Seconds", "Nanoseconds")]
    return RawTable(names, [_unit(n) for n in names], {n: columns[n] for n in names}, time, header)


def parse_metadata(text: str, where: str) -> dict[str, dict[str, str]]:
    """A `.metadata` member (INI) as section -> key -> value, keys as written."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        cp.read_string(text)
    except configparser.Error as exc:
        raise GhgError(f"{where}: not an INI file: {exc}") from None
    return {s: dict(cp[s]) for s in cp.sections()}


def read_ghg(path: str | Path) -> GhgArchive:
    """The tables and metadata of a `.ghg` archive."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise GhgError(f"{path}: not a .ghg (zip) archive: {exc}") from None
    with zf:
        members = zf.namelist()

        def one(suffix: str, biomet: bool) -> str | None:
            found = [m for m in members if m.endswith(suffix) and m.endswith("-biomet" + suffix) == biomet]
            return found[0] if found else None

        data_name, meta_name = one(".data", False), one(".metadata", False)
        if data_name is None or meta_name is None:
            raise GhgError(f"{path}: needs a .data and a .metadata member, has: {', '.join(members) or 'nothing'}")
        data = parse_data(zf.read(data_name).decode("utf-8", errors="replace"), f"{path}:{data_name}")
        meta = parse_metadata(zf.read(meta_name).decode("utf-8", errors="replace"), f"{path}:{meta_name}")
        bio_name = one(".data", True)
        biomet = (parse_data(zf.read(bio_name).decode("utf-8", errors="replace"), f"{path}:{bio_name}")
                  if bio_name else None)
    return GhgArchive(data, meta, biomet)
