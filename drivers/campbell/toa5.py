"""Campbell Scientific TOA5: the ASCII table format of LoggerNet and the loggers' cards.

Four header lines of quoted, comma-separated fields (Campbell Scientific, "LoggerNet manual",
appendix on data file formats; DOMAIN.md): 1. environment ("TOA5", station name, logger model,
serial number, OS version, program name, program signature, table name); 2. field names;
3. units; 4. processing ("Smp", "Avg", ...). Then one record a line: the quoted TIMESTAMP
("YYYY-MM-DD HH:MM:SS[.fff]", logger time, here taken as UTC), RECORD, then the values; "NAN" for a
missing value. The writer emits the same, so other tools (EddyPro, TK3) read our exports.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from drivers.rawtable import RawTable

ENVIRONMENT_FIELDS = ("file_format", "station_name", "logger_model", "serial_number", "os_version",
                      "program_name", "program_signature", "table_name")


class Toa5Error(ValueError):
    """A file that is not a readable TOA5 table; the message names the file and the line."""


def _row(line: str) -> list[str]:
    return next(csv.reader([line]))


def read_toa5(path: str | Path) -> RawTable:
    """The table of a TOA5 file (TIMESTAMP and RECORD become `time` and the column RECORD)."""
    path = Path(path)
    text = path.read_text(encoding="ascii", errors="replace")
    lines = text.splitlines()
    if len(lines) < 4:
        raise Toa5Error(f"{path}: {len(lines)} lines, a TOA5 file has 4 header lines")
    env = _row(lines[0])
    if not env or env[0] != "TOA5":
        raise Toa5Error(f"{path}: line 1: starts with {env[:1]}, not \"TOA5\"")
    names, units, processing = _row(lines[1]), _row(lines[2]), _row(lines[3])
    if not (len(names) == len(units) == len(processing)):
        raise Toa5Error(f"{path}: lines 2-4: {len(names)} names, {len(units)} units, "
                        f"{len(processing)} processing fields")
    if names[0] != "TIMESTAMP":
        raise Toa5Error(f"{path}: line 2: first field is {names[0]!r}, not \"TIMESTAMP\"")
    stamps, columns = _fast_body(text, len(lines) - 4, names[1:])
    if columns is None:  # text columns or a broken line: line by line, naming the line
        stamps, columns = _slow_body(path, lines[4:], names[1:])
    try:
        time = np.array(stamps, dtype="datetime64[ns]")
    except ValueError as exc:
        raise Toa5Error(f"{path}: a TIMESTAMP is not a date and time ({exc})") from None
    header = dict(zip(ENVIRONMENT_FIELDS, env))
    header["processing"] = ",".join(processing[1:])
    return RawTable(names[1:], units[1:], columns, time, header)


_STAMP = re.compile(r'^"([^"]*)",', re.MULTILINE)


def _fast_body(text: str, rows: int, names: list[str]) -> tuple[list[str], dict[str, NDArray] | None]:
    """The common case, an all-numeric table: timestamps by one regular expression, values by
    numpy's C parser; (stamps, None) when the body is not that simple."""
    body_at = 0
    for _ in range(4):
        body_at = text.index("\n", body_at) + 1
    stamps = _STAMP.findall(text, body_at)
    if rows == 0 or len(stamps) != rows or text.count(",", body_at) != rows * len(names):
        return stamps, None  # (the count of commas: loadtxt would let extra fields through)
    try:
        values = np.loadtxt(io.StringIO(text[body_at:]), delimiter=",", quotechar='"', ndmin=2, dtype=np.float64,
                            usecols=range(1, len(names) + 1))
    except ValueError:
        return stamps, None
    if values.shape != (rows, len(names)):
        return stamps, None
    return stamps, {name: values[:, j].copy() for j, name in enumerate(names)}


def _slow_body(path: Path, data: list[str], names: list[str]) -> tuple[list[str], dict[str, NDArray]]:
    stamps, rest = [], []
    for i, line in enumerate(data, start=5):
        if not line.startswith('"') or line.count('"') < 2:
            raise Toa5Error(f"{path}: line {i}: no quoted TIMESTAMP: {line[:60]!r}")
        end = line.index('"', 1)
        stamps.append(line[1:end])
        rest.append(line[end + 2:])
    return stamps, _columns(path, rest, names, len(names))


def _columns(path: Path, rest: list[str], names: list[str], ncol: int) -> dict[str, NDArray]:
    if not rest:
        return {n: np.empty(0) for n in names}
    flat = ",".join(rest).replace('"', "").split(",")
    if len(flat) != ncol * len(rest):
        for i, line in enumerate(rest, start=5):
            if line.count(",") + 1 != ncol:
                raise Toa5Error(f"{path}: line {i}: {line.count(',') + 1} values after TIMESTAMP, "
                                f"the header names {ncol}")
    cells = np.array(flat).reshape(len(rest), ncol)
    out: dict[str, NDArray] = {}
    for j, name in enumerate(names):
        try:
            out[name] = cells[:, j].astype(np.float64)
        except ValueError:
            out[name] = cells[:, j]  # a text column stays text
    return out


def _texts(values: NDArray) -> list[str]:
    """One column's cells: numbers with 7 significant digits ("NAN" when missing), text quoted."""
    if values.dtype.kind in "fc":
        return [("NAN" if x != x or x in (float("inf"), float("-inf")) else f"{x:.7g}") for x in values.tolist()]
    if values.dtype.kind in "iub":
        return [str(int(x)) for x in values.tolist()]
    return ['"' + str(x).replace('"', "'") + '"' for x in values.tolist()]


def write_toa5(path: str | Path, table: RawTable, *, station_name: str = "ghgnet", logger_model: str = "ghgnet",
               table_name: str = "ts_data", processing: list[str] | None = None) -> None:
    """Write `table` as TOA5 (TIMESTAMP with as many decimals of a second as the rate needs)."""
    env = ["TOA5", station_name, logger_model, "0", "ghgnet", "ghgnet", "0", table_name]
    proc = processing or ["Smp"] * len(table.names)
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writerow(env)
    w.writerow(["TIMESTAMP", *table.names])
    w.writerow(["TS", *table.units])
    w.writerow(["", *proc])
    t = table.time.astype("datetime64[ms]")
    fractional = bool(np.any(t.astype(np.int64) % 1000))
    stamps = np.datetime_as_string(t, unit="ms" if fractional else "s")
    cells = [['"' + s.replace("T", " ") + '"' for s in stamps.tolist()]]
    cells += [_texts(table.columns[n]) for n in table.names]
    buf.writelines(",".join(row) + "\r\n" for row in zip(*cells))
    Path(path).write_text(buf.getvalue(), encoding="ascii")
