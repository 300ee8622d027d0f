"""ABB / Los Gatos Research (LGR) records: the analyzer's header line, and one record read by it.

An LGR GGA, UGGA or MGGA writes the same comma-separated lines to its data files and to its RS-232
output: an identity line (`VC:2f90039 BD:Jan 16 2014 SN:LGR-14-0061`, or
`SN:... BD:... VC:... MD5:...`), a header line naming the columns, then one record per line, values
right-aligned in fixed-width fields. Which columns there are, and in which order, depends on the
firmware, so a record is read by the header it follows, never by position alone. Seen in public
files:

* `Time, [CH4]_ppm, [CH4]_ppm_sd, [H2O]_ppm, ..., [CO2]d_ppm, [CO2]d_ppm_sd, GasP_torr, ...,
  RD1_us_sd, Fit_Flag, MIU_VALVE, MIU_DESC` (micro-GGA file, firmware VC:2f90039 of 2014:
  Qepanna/goFlux inst/extdata/LGR/example_LGR.txt; the same layout in a UGGA serial record,
  patricktokeeffe/daqfactory-drivers LGR_UGGA/readme.md). uataq's pipeline (lair, lgr_ugga.py) notes
  that 2013-2014 firmware wrote one MIU column where later firmware writes MIU_VALVE and MIU_DESC.
* `SysTime, Time, [CH4]_ppm, [CH4]_ppm_sd, [CO2]_ppm, ..., Batt_v, BATT_PERCENT,
  Temp_Status_mA, Analyzer_Status_mA, Fit_Flag, MIU_VALVE, MIU_DESC` (GLA132 UGGA, firmware of 2019:
  goFlux inst/extdata/UGGA/UGGA.txt).
* The N2O/CO analyzer names its dry columns `[CO_dry]_ppm` and its error columns `_se`
  (daqfactory-drivers LosGatos_N2O_CO/readme.md); both spellings are read.

Units come from the column names: mole fractions in ppm (`_ppm`; CH4, CO and N2O are converted to
ppb and H2O to %, the ghgnet units), `GasP_torr` the cell pressure, `GasT_C` the cell gas
temperature, `AmbT_C` the ambient temperature, `RD0_us`/`RD1_us` the ring-down times. `_sd`/`_se`
columns and unknown ones are kept in the layout (they count for the field check) but not read.

A record is valid only when `Fit_Flag` is 3 (VALID_FIT_FLAG; the DAQFactory driver discards any
other value); what the other values mean is not public.

Time stamps are the analyzer's local clock with no zone. Their date order is an analyzer setting
(`mm/dd/yyyy` "Absolute Local American" in the daqfactory-drivers readmes, `dd/mm/yyyy` in the goFlux
UGGA file and uataq's serial records, `yyyy/mm/dd` in one readme, two-digit years in the N2O/CO
one), so it is configuration: DATE_ORDERS; a four-digit first field is always read as year first.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from drivers.reading import unit_of

VALID_FIT_FLAG = 3
"""The Fit_Flag of a valid record."""

DATE_ORDERS = ("mdy", "dmy", "ymd")
DEFAULT_DATE_ORDER = "mdy"
"""LGR's "Absolute Local American" setting; no public source says which one leaves the factory."""

TIME_COLUMNS = ("Time", "SysTime")
"""Columns holding the record's time, the first one present is read (`Time` is the measurement's,
`SysTime` when the record was written)."""

SPECIES_NAMES = {"CH4": "ch4", "CO2": "co2", "H2O": "h2o", "CO": "co", "N2O": "n2o"}

DIAGNOSTICS: dict[str, str] = {
    "GasP_torr": "cavity_pressure",
    "GasT_C": "cavity_temp",
    "AmbT_C": "ambient_temp",
    "RD0_us": "ringdown_0",
    "RD1_us": "ringdown_1",
}

# factor[(wire unit, ghgnet unit)]: multiply a wire value by it to get the ghgnet value
UNIT_FACTORS: dict[tuple[str, str], float] = {
    ("ppm", "ppm"): 1.0,
    ("ppm", "ppb"): 1000.0,
    ("ppb", "ppb"): 1.0,
    ("ppb", "ppm"): 0.001,
    ("ppm", "%"): 1e-4,
    ("Torr", "Torr"): 1.0,
    ("degC", "degC"): 1.0,
    ("us", "us"): 1.0,
}

LAYOUT_2014 = (
    "Time", "[CH4]_ppm", "[CH4]_ppm_sd", "[H2O]_ppm", "[H2O]_ppm_sd", "[CO2]_ppm", "[CO2]_ppm_sd",
    "[CH4]d_ppm", "[CH4]d_ppm_sd", "[CO2]d_ppm", "[CO2]d_ppm_sd", "GasP_torr", "GasP_torr_sd",
    "GasT_C", "GasT_C_sd", "AmbT_C", "AmbT_C_sd", "RD0_us", "RD0_us_sd", "RD1_us", "RD1_us_sd",
    "Fit_Flag", "MIU_VALVE", "MIU_DESC",
)
"""The columns of the 2014 firmware (micro-GGA file; a UGGA's serial record)."""

LAYOUT_2019 = (
    "SysTime", "Time", "[CH4]_ppm", "[CH4]_ppm_sd", "[CO2]_ppm", "[CO2]_ppm_sd", "[H2O]_ppm",
    "[H2O]_ppm_sd", "[CH4]d_ppm", "[CH4]d_ppm_sd", "[CO2]d_ppm", "[CO2]d_ppm_sd", "GasP_torr",
    "GasP_torr_sd", "GasT_C", "GasT_C_sd", "AmbT_C", "AmbT_C_sd", "RD0_us", "RD0_us_sd", "RD1_us",
    "RD1_us_sd", "LTC0_v", "LTC0_v_sd", "LTC1_v", "LTC1_v_sd", "Batt_v", "Batt_v_sd", "BATT_PERCENT",
    "BATT_PERCENT_sd", "Temp_Status_mA", "Analyzer_Status_mA", "Fit_Flag", "MIU_VALVE", "MIU_DESC",
)
"""The columns of the 2019 GLA132 UGGA firmware."""

LAYOUTS: dict[str, tuple[str, ...]] = {"2014": LAYOUT_2014, "2019": LAYOUT_2019}

_SPECIES_RE = re.compile(r"^\[(?P<sp>[A-Za-z0-9]+?)(?P<dry>_dry)?\](?P<d>d)?_(?P<unit>ppm|ppb)$")
_IDENTITY_RE = re.compile(r"^\s*(?:VC|SN|BD|MD5):")
_IDENTITY_ITEM_RE = re.compile(r"([A-Z0-9]+):(.*?)(?=\s+[A-Z0-9]+:|$)")
_DATE_RE = re.compile(r"^(\d{1,4})/(\d{1,2})/(\d{1,4})$")
_CLOCK_RE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$")


class LayoutError(ValueError):
    """A header (or a configured column list) the records cannot be read by."""


class MalformedRecord(ValueError):
    """A record line that does not parse by the layout; the message says why."""


@dataclass(frozen=True, slots=True)
class Column:
    index: int
    name: str
    quantity: str
    factor: float  # wire value * factor = value in the quantity's ghgnet unit


def quantity_of(name: str) -> tuple[str, float] | None:
    """(ghgnet quantity, unit factor) of an LGR column name, or None for a column not read."""
    m = _SPECIES_RE.match(name)
    if m:
        species = SPECIES_NAMES.get(m["sp"].upper())
        if species is None:
            return None
        dry = bool(m["dry"] or m["d"]) and species != "h2o"
        quantity = f"{species}_dry" if dry else species
        return quantity, UNIT_FACTORS[(m["unit"], unit_of(species))]
    if name in DIAGNOSTICS:
        quantity = DIAGNOSTICS[name]
        return quantity, 1.0
    return None


@dataclass(frozen=True, slots=True)
class Record:
    time: datetime
    fit_flag: int
    values: dict[str, float]


@dataclass(frozen=True)
class Layout:
    """The columns of one firmware, with what each one read means."""

    names: tuple[str, ...]
    time_index: int
    fit_index: int
    columns: tuple[Column, ...]

    @classmethod
    def from_names(cls, names: list[str] | tuple[str, ...]) -> Layout:
        names = tuple(n.strip() for n in names)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise LayoutError(f"column(s) named twice: {', '.join(dupes)}")
        times = [names.index(t) for t in TIME_COLUMNS if t in names]
        if not times:
            raise LayoutError(f"no time column ({' or '.join(TIME_COLUMNS)}) in {list(names)}")
        if "Fit_Flag" not in names:
            raise LayoutError(f"no Fit_Flag column in {list(names)}: no record could be judged valid")
        columns = []
        for i, name in enumerate(names):
            got = quantity_of(name)
            if got is not None:
                columns.append(Column(i, name, got[0], got[1]))
        if not any(c.quantity.removesuffix("_dry") in SPECIES_NAMES.values() and c.quantity != "h2o"
                   for c in columns):
            raise LayoutError(f"no mole-fraction column ([CO2]_ppm, [CH4]d_ppm, ...) in {list(names)}")
        return cls(names, times[0], names.index("Fit_Flag"), tuple(columns))

    @classmethod
    def from_header(cls, line: str) -> Layout:
        return cls.from_names(line.split(","))

    def parse(self, line: str, date_order: str, zone: tzinfo) -> Record:
        """One record line by this layout; MalformedRecord names what was wrong. Non-finite values
        are left out of `values` (a NaN is missing, not a number)."""
        fields = line.split(",")
        if len(fields) != len(self.names):
            raise MalformedRecord(f"{len(fields)} fields for the {len(self.names)} columns of the header")
        stamp = fields[self.time_index].strip()
        try:
            local = parse_time(stamp, date_order)
        except ValueError as exc:
            raise MalformedRecord(f"bad time {stamp!r}: {exc}") from None
        flag = fields[self.fit_index].strip()
        try:
            fit_flag = int(float(flag))
        except ValueError:
            raise MalformedRecord(f"Fit_Flag is not a number: {flag!r}") from None
        values: dict[str, float] = {}
        for col in self.columns:
            text = fields[col.index].strip()
            try:
                value = float(text)
            except ValueError:
                raise MalformedRecord(f"{col.name}: not a number: {text!r}") from None
            if math.isfinite(value):
                values[col.quantity] = round(value * col.factor, 9)  # no float dust from the factor
        return Record(local.replace(tzinfo=zone).astimezone(UTC), fit_flag, values)


def is_identity(line: str) -> bool:
    return bool(_IDENTITY_RE.match(line))


def parse_identity(line: str) -> dict[str, str]:
    """`VC:2f90039 BD:Jan 16 2014 SN:LGR-14-0061` -> {"VC": "2f90039", "BD": "Jan 16 2014", ...}."""
    return {k: v.strip() for k, v in _IDENTITY_ITEM_RE.findall(line.strip())}


def is_header(line: str) -> bool:
    """A header names a time column first; a record starts with a date."""
    return line.split(",", 1)[0].strip() in TIME_COLUMNS


def parse_time(stamp: str, date_order: str) -> datetime:
    """An LGR time stamp (`04/10/2021 11:58:39.954`, `07/31/20 12:05:32.661`,
    `2020/08/22 14:22:55.041`), naive, in the analyzer's zone."""
    parts = stamp.split()
    if len(parts) != 2:
        raise ValueError("expected a date and a time")
    d, c = _DATE_RE.match(parts[0]), _CLOCK_RE.match(parts[1])
    if d is None or c is None:
        raise ValueError("expected d/d/d h:mm:ss.fff")
    a, b, e = d.groups()
    order = "ymd" if len(a) == 4 else date_order
    fields = dict(zip(order, (a, b, e), strict=True))
    year = int(fields["y"])
    if len(fields["y"]) <= 2:
        year += 2000
    frac = c[4] or ""
    return datetime(year, int(fields["m"]), int(fields["d"]), int(c[1]), int(c[2]), int(c[3]),
                    int((frac + "000000")[:6]))


def format_time(t: datetime, date_order: str) -> str:
    """The inverse of parse_time with four-digit years and milliseconds (the simulator writes it)."""
    parts = {"y": f"{t.year:04d}", "m": f"{t.month:02d}", "d": f"{t.day:02d}"}
    date = "/".join(parts[k] for k in date_order)
    return f"{date} {t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond // 1000:03d}"
