"""Campbell Scientific TOB1: a binary table with an ASCII header.

Five header lines of quoted, comma-separated fields (DOMAIN.md; Campbell's data file formats):
1. environment ("TOB1", station, model, serial, OS, program, signature, table); 2. field names;
3. units; 4. processing; 5. data types. Then fixed-size binary records, one field after another
with no padding. Types read here: ULONG (uint32), LONG (int32), IEEE4 (float32), IEEE8 (float64)
little-endian, as the loggers' CPUs store them; FP2 (see fp2.py) most significant byte first;
BOOL (1 byte); ASCII(n) (n bytes of text). SECONDS and NANOSECONDS, when present, give the time
since 1990-01-01 00:00:00 (Campbell's epoch), read as UTC.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from drivers.campbell.fp2 import decode_fp2, encode_fp2
from drivers.campbell.toa5 import ENVIRONMENT_FIELDS
from drivers.rawtable import RawTable

CAMPBELL_EPOCH = np.datetime64("1990-01-01T00:00:00", "ns")

_TYPES = {"ULONG": "<u4", "LONG": "<i4", "IEEE4": "<f4", "IEEE4L": "<f4", "IEEE8": "<f8", "IEEE8L": "<f8",
          "FP2": ">u2", "BOOL": "u1", "UINT2": "<u2", "INT2": "<i2"}


class Tob1Error(ValueError):
    """A file that is not a readable TOB1 table; the message names the file and what is wrong."""


def _dtype(path: Path, types: list[str], names: list[str]) -> np.dtype:
    fields = []
    for name, typ in zip(names, types):
        ascii_n = re.fullmatch(r"ASCII\((\d+)\)", typ)
        if ascii_n:
            fields.append((name, f"S{ascii_n.group(1)}"))
        elif typ in _TYPES:
            fields.append((name, _TYPES[typ]))
        else:
            raise Tob1Error(f"{path}: line 5: field {name}: data type {typ!r} is not one of "
                            f"{', '.join(sorted(_TYPES))}, ASCII(n)")
    return np.dtype(fields)


def read_tob1(path: str | Path) -> RawTable:
    """The table of a TOB1 file (SECONDS/NANOSECONDS become `time`; FP2 decoded to floats)."""
    path = Path(path)
    blob = path.read_bytes()
    header, pos = [], 0
    for i in range(5):
        end = blob.find(b"\n", pos)
        if end < 0:
            raise Tob1Error(f"{path}: header line {i + 1} missing (a TOB1 file has 5)")
        header.append(next(csv.reader([blob[pos:end].decode("ascii", errors="replace").rstrip("\r")])))
        pos = end + 1
    env, names, units, processing, types = header
    if not env or env[0] != "TOB1":
        raise Tob1Error(f"{path}: line 1: starts with {env[:1]}, not \"TOB1\"")
    if not (len(names) == len(units) == len(types)):
        raise Tob1Error(f"{path}: lines 2, 3, 5: {len(names)} names, {len(units)} units, {len(types)} types")
    dtype = _dtype(path, types, names)
    body = len(blob) - pos
    if body % dtype.itemsize:
        raise Tob1Error(f"{path}: {body} bytes of data is not a whole number of {dtype.itemsize}-byte records "
                        f"(a truncated last record?)")
    rec = np.frombuffer(blob, dtype=dtype, offset=pos)
    columns = {}
    for name, typ in zip(names, types):
        col = rec[name]
        if typ == "FP2":
            columns[name] = decode_fp2(col)
        elif typ.startswith("ASCII"):
            columns[name] = np.char.decode(np.char.rstrip(col, b"\x00"), "ascii", errors="replace")
        else:
            columns[name] = col.astype(np.float64)
    if "SECONDS" in columns:
        ns = rec["SECONDS"].astype(np.int64) * 1_000_000_000
        if "NANOSECONDS" in columns:
            ns = ns + rec["NANOSECONDS"].astype(np.int64)
        time = CAMPBELL_EPOCH + ns.astype("timedelta64[ns]")
    else:
        time = np.full(len(rec), np.datetime64("NaT"), dtype="datetime64[ns]")
    keep = [i for i, n in enumerate(names) if n not in ("SECONDS", "NANOSECONDS")]
    head = dict(zip(ENVIRONMENT_FIELDS, env))
    head["processing"] = ",".join(processing)
    head["types"] = ",".join(types[i] for i in keep)
    return RawTable([names[i] for i in keep], [units[i] for i in keep],
                    {names[i]: columns[names[i]] for i in keep}, time, head)


def write_tob1(path: str | Path, table: RawTable, types: dict[str, str], *, station_name: str = "ghgnet",
               table_name: str = "ts_data") -> None:
    """Write `table` as TOB1 with SECONDS and NANOSECONDS first and each column in the type given
    (ULONG, LONG, IEEE4, IEEE8 or FP2); for tests and for tools that want the binary form."""
    names = ["SECONDS", "NANOSECONDS", *table.names]
    typ = ["ULONG", "ULONG", *[types.get(n, "IEEE4") for n in table.names]]
    dtype = _dtype(Path(path), typ, names)
    rec = np.zeros(len(table), dtype=dtype)
    ns = (table.time.astype("datetime64[ns]") - CAMPBELL_EPOCH).astype(np.int64)
    rec["SECONDS"] = ns // 1_000_000_000
    rec["NANOSECONDS"] = ns % 1_000_000_000
    for n, t in zip(table.names, typ[2:]):
        rec[n] = encode_fp2(table.columns[n]) if t == "FP2" else table.columns[n]
    lines = [["TOB1", station_name, "ghgnet", "0", "ghgnet", "ghgnet", "0", table_name], names,
             ["SECONDS", "NANOSECONDS", *table.units], ["", "", *["Smp"] * len(table.names)], typ]
    head = "".join(",".join(f'"{f}"' for f in line) + "\r\n" for line in lines)
    Path(path).write_bytes(head.encode("ascii") + rec.tobytes())
