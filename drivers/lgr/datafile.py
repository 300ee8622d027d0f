"""Reading an LGR GGA/UGGA/MGGA data file (`gga_2021-10-04_f0000.txt`, or the zip it is kept in).

The file is what the analyzer streams: an identity line, a header line, then records
(drivers/lgr/columns.py). The analyzer signs its files: after the last record comes an ASCII-armoured
block from `-----BEGIN PGP MESSAGE-----` to `-----END PGP MESSAGE-----` (goFlux's example_LGR.txt
ends so; uataq's pipeline skips an incomplete last line; lgr_read.jl notes the signature after the
last data line). A reader stops at the block: its base64 lines are not records. The block is
returned as `signature` (verifying it needs LGR's key, which is not public).

Malformed lines (a record cut by a power loss, noise) are skipped and named in `problems`; the
records around them are kept. Records whose Fit_Flag is not 3 are kept, marked invalid, as the
streaming driver marks them.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from drivers.lgr.columns import (
    DEFAULT_DATE_ORDER,
    VALID_FIT_FLAG,
    Layout,
    LayoutError,
    MalformedRecord,
    is_header,
    is_identity,
    parse_identity,
)
from drivers.reading import Reading

PGP_BEGIN = "-----BEGIN PGP"


class DataFileError(ValueError):
    """The file cannot be read at all (no header line, or a header without the needed columns)."""


@dataclass
class LgrDataFile:
    """What one file held. `identity`: the items of its first line (SN, BD, VC, MD5...)."""

    name: str
    identity: dict[str, str] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    readings: list[Reading] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    signature: str | None = None

    @property
    def valid(self) -> list[Reading]:
        """The records with Fit_Flag 3."""
        return [r for r in self.readings if r.status_ok]


def parse_datafile(
    text: str, name: str = "<text>", device: str = "lgr", date_order: str = DEFAULT_DATE_ORDER,
    timezone: str = "UTC",
) -> LgrDataFile:
    """The records of a data file's text, read by its own header, up to the PGP block."""
    zone = ZoneInfo(timezone)
    out = LgrDataFile(name)
    layout: Layout | None = None
    lines = text.splitlines()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip("\r\x00 ")
        if line.startswith(PGP_BEGIN):
            out.signature = "\n".join(x.strip("\r") for x in lines[number - 1:])
            break
        if not line:
            continue
        if is_identity(line) and layout is None:
            out.identity = parse_identity(line)
            continue
        if is_header(line):
            try:
                layout = Layout.from_header(line)
            except LayoutError as why:
                raise DataFileError(f"{name}: line {number}: header not usable: {why}") from None
            out.columns = layout.names
            continue
        if layout is None:
            raise DataFileError(f"{name}: line {number}: a record before any header line: {line[:120]!r}")
        try:
            rec = layout.parse(line, date_order, zone)
        except MalformedRecord as why:
            out.problems.append(f"{name}: line {number}: malformed record skipped ({why}): {line[:120]!r}")
            continue
        ok = rec.fit_flag == VALID_FIT_FLAG
        out.readings.append(Reading(rec.time, device, rec.values, status=rec.fit_flag, status_ok=ok,
                                    status_flags=() if ok else (f"fit_flag_{rec.fit_flag}",)))
    if layout is None:
        raise DataFileError(f"{name}: no header line (Time, [CH4]_ppm, ..., Fit_Flag)")
    return out


def read_datafiles(path: str | Path, **options: str) -> list[LgrDataFile]:
    """Every data file at `path`: a .txt file, or each .txt member of a .zip archive."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return [
                parse_datafile(archive.read(member).decode("ascii", errors="replace"), f"{path.name}:{member}",
                               **options)
                for member in sorted(archive.namelist()) if member.lower().endswith(".txt")
            ]
    return [parse_datafile(path.read_text(encoding="ascii", errors="replace"), path.name, **options)]
