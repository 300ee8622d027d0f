"""Result-file layouts a GC's software exports, parsed into injections.

Pure text in, `Injection`s out; no file-system access (drivers/gc/results.py moves the files).

GCWerks (`layout = "gcwerks"`): the whitespace-separated export that GCWerks writes (as read by
OpenGHG's `openghg/standardise/surface/_gcwerks.py` and seen in its test file
`tests/data/proc_test_data/GC/capegrim-medusa.18.C`): a `Created:` line, the site-instrument
line, a `Scale:` row and a `Unit:` row aligned with the column row, the column row
`Year yyyy mm dd hh mi ryyy rm rd rh ri Inlet Standard <compound> Flag <compound> Flag ...`, then
one row per injection: decimal year, sample time (yyyy mm dd hh mi), the bracketing standard's time,
the inlet, the standard tank, and per compound its value (`nan` when none) and a four-character
flag whose first character is `-` when the value is good (OpenGHG reads it as the status flag; the
second is the integration flag). The row time is taken as the injection time (OpenGHG notes that it
is the centre of the sampling period). Not fixed by a public source, and kept here in
`GCWERKS_STANDARD_ROWS`: whether an export holds rows for the standard injections themselves; this
parser reads any row, and the station's `streams` map says which inlet names are standards.

ChemStation (`layout = "chemstation"`): the Agilent ChemStation text report (Report.TXT), as in the
public example in jack-sparrowh/gc_report_to_excel's README: header fields `Sample Name:` and
`Injection Date  : ...` (a second field may follow on the same line), one peak table per signal with
a `RetTime ... Amount ... Name` column row, a units row, and a dashed row whose `|` marks the
column edges; rows up to the first blank line; `N Warnings or Errors :` followed by `Warning : ...`
or `Error : ...` lines; `*** End of Report ***` last. Not fixed by a public source, and kept in one
place each: the injection date's format (`CHEMSTATION_DATE_FORMAT`; the example hides it), the text
encoding (`decode`: UTF-16 with a byte-order mark, else UTF-8, else Latin-1), and the amount's unit
when its units cell is empty (`ChemStation.default_unit`, a config field).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

GCWERKS_STANDARD_ROWS = "any row is an injection; the station's `streams` map marks standard inlets"
CHEMSTATION_DATE_FORMAT = "%m/%d/%Y %I:%M:%S %p"
END_OF_REPORT = "*** End of Report ***"


class MalformedFile(ValueError):
    """A result file that cannot be read; the message says where and why."""


@dataclass
class Injection:
    """One injection as the file gives it: local (naive) time, the name of what was injected, and
    per compound (the file's name) its value and unit, and the compounds the file flags."""

    time: datetime
    source: str
    values: dict[str, tuple[float, str]] = field(default_factory=dict)
    flagged: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def decode(data: bytes) -> str:
    """File bytes as text: UTF-16 when a byte-order mark says so, else UTF-8, else Latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# --------------------------------------------------------------------------- GCWerks

_GCWERKS_TIME_COLUMNS = ("yyyy", "mm", "dd", "hh", "mi")


def gcwerks_complete(text: str) -> bool:
    """Every line is finished (a file still being written stops inside a line)."""
    return text.endswith("\n")


def parse_gcwerks(text: str) -> list[Injection]:
    lines = text.splitlines()
    header_at = next((i for i, ln in enumerate(lines) if ln.split()[:6] == ["Year", *_GCWERKS_TIME_COLUMNS]), None)
    if header_at is None:
        raise MalformedFile("no column row `Year yyyy mm dd hh mi ...`")
    names = lines[header_at].split()
    units_row = next((ln.split() for ln in lines[:header_at] if ln.split()[:1] == ["Unit:"]), None)
    if units_row is None or len(units_row) != len(names):
        raise MalformedFile(f"`Unit:` row missing or not aligned with the {len(names)} columns")
    for needed in ("Inlet",):
        if needed not in names:
            raise MalformedFile(f"no `{needed}` column")
    inlet = names.index("Inlet")
    compounds = [(i, names[i]) for i in range(len(names) - 1) if names[i + 1] == "Flag" and names[i] != "Flag"]
    if not compounds:
        raise MalformedFile("no compound columns (`<name> Flag` pairs)")
    out: list[Injection] = []
    for lineno, line in enumerate(lines[header_at + 1:], start=header_at + 2):
        cells = line.split()
        if not cells:
            continue
        if len(cells) != len(names):
            raise MalformedFile(f"line {lineno}: {len(cells)} cells for {len(names)} columns: {line[:80]!r}")
        try:
            time = datetime(*(int(c) for c in cells[1:6]))
        except ValueError:
            raise MalformedFile(f"line {lineno}: bad sample time {' '.join(cells[1:6])!r}") from None
        inj = Injection(time, cells[inlet])
        for i, name in compounds:
            try:
                value = float(cells[i])
            except ValueError:
                raise MalformedFile(f"line {lineno}: {name}: not a number: {cells[i]!r}") from None
            flag = cells[i + 1]
            if math.isnan(value):
                continue
            if not flag.startswith("-"):
                inj.flagged[name] = flag
                continue
            inj.values[name] = (value, units_row[i])
        out.append(inj)
    if not out:
        raise MalformedFile("no injection rows")
    return out


# --------------------------------------------------------------------------- ChemStation

_FIELD = re.compile(r"^\s*(?P<key>[A-Za-z][A-Za-z .]*?)\s*:\s*(?P<value>.*?)(?:\s{2,}[A-Za-z][A-Za-z .]*:.*)?$")
_WARNING = re.compile(r"^\s*(Warning|Error)\s*:\s*(.*)$")


def chemstation_complete(text: str) -> bool:
    return END_OF_REPORT in text


def _header_field(lines: list[str], key: str) -> str | None:
    for ln in lines:
        m = _FIELD.match(ln)
        if m and m.group("key") == key:
            return m.group("value").strip()
    return None


def _peak_tables(lines: list[str]) -> list[list[dict[str, str]]]:
    """Each peak table as rows of {column name: cell text} (units under the key `<name> unit`)."""
    tables = []
    for i, ln in enumerate(lines):
        if not ln.lstrip().startswith("RetTime") or i + 2 >= len(lines) or "|" not in lines[i + 2]:
            continue
        dashes = lines[i + 2]
        edges = [0] + [m.start() + 1 for m in re.finditer(r"\|", dashes)] + [None]
        spans = list(pairwise(edges))
        heads = [ln[a:b].strip() if b else ln[a:].strip() for a, b in spans]
        units = [lines[i + 1][a:b].strip() if b else lines[i + 1][a:].strip() for a, b in spans]
        rows = []
        for row in lines[i + 3:]:
            if not row.strip():
                break
            cells = {h: (row[a:b] if b else row[a:]).strip() for h, (a, b) in zip(heads, spans, strict=True)}
            cells.update({f"{h} unit": u.strip("[] ") for h, u in zip(heads, units, strict=True)})
            rows.append(cells)
        tables.append(rows)
    return tables


def parse_chemstation(text: str, date_format: str, default_unit: str) -> list[Injection]:
    if not chemstation_complete(text):
        raise MalformedFile(f"no `{END_OF_REPORT}` line: the report is cut")
    lines = text.splitlines()
    sample = _header_field(lines, "Sample Name")
    stamp = _header_field(lines, "Injection Date")
    if not sample:
        raise MalformedFile("no `Sample Name:`")
    if not stamp:
        raise MalformedFile("no `Injection Date :`")
    try:
        time = datetime.strptime(stamp, date_format)
    except ValueError:
        raise MalformedFile(f"Injection Date {stamp!r} does not read as {date_format!r}") from None
    tables = _peak_tables(lines)
    if not tables:
        raise MalformedFile("no peak table (`RetTime ... Amount ... Name` with its dashed row)")
    inj = Injection(time, sample)
    for rows in tables:
        for cells in rows:
            if "Amount" not in cells or "Name" not in cells:
                raise MalformedFile("a peak table without `Amount` or `Name` columns")
            name, amount = cells["Name"], cells["Amount"]
            if not name or name == "?":
                continue
            try:
                value = float(amount)
            except ValueError:
                raise MalformedFile(f"peak {name!r}: amount {amount!r} is not a number") from None
            inj.values[name] = (value, cells.get("Amount unit") or default_unit)
    for ln in lines:
        m = _WARNING.match(ln)
        if m:
            (inj.errors if m.group(1) == "Error" else inj.warnings).append(m.group(2).strip())
    return [inj]
