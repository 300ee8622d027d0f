"""HJ 212 codes as data: command numbers (CN), data flags, factor codes and units, the mass
concentration conversion at standard conditions, and the ICOS <-> HJ 212 flag tables.

Sources: HJ 212-2017 as summarised in DOMAIN.md "HJ 212-2017"; QnRtn and ExeRtn values as the
standard's return tables, read in open implementations (com.apr7.sponge hjt212 Constants.java for
QnRtn 1-9 and 100); the factor table as transcribed from the standard's Appendix B in
srdgame/lua-HJ212 `hj212.csv`: a05001 CO2 mg/m3 (emission kg), a05002 CH4 **ng/m3** (emission g).
The CH4 unit is the table's, as transcribed; DOMAIN.md and the task assumed mg/m3. We follow the table
and keep the unit a per-factor setting (`Factor.unit`), so a platform or logger that uses mg/m3 is one
line of configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ghgnet import species as species_registry

# --- Command numbers (CN), as the 4-digit strings of the data segment -------------------------
CN_REALTIME = "2011"
CN_MINUTE = "2051"
CN_HOUR = "2061"
CN_DAY = "2031"
CN_SET_TIMEOUT = "1000"      # OverTime (s) and ReCount
CN_GET_TIME = "1011"
CN_SET_TIME = "1012"
CN_GET_RTD_INTERVAL = "1061"
CN_SET_RTD_INTERVAL = "1062"
CN_GET_MIN_INTERVAL = "1063"
CN_SET_MIN_INTERVAL = "1064"
CN_REQUEST_ANSWER = "9011"   # QnRtn
CN_EXECUTION_RESULT = "9012"  # ExeRtn
CN_NOTIFY_ANSWER = "9013"
CN_DATA_ANSWER = "9014"
CN_HEARTBEAT = "9015"        # HJ 212-2025 only, as one open implementation reads it (unconfirmed)

DATA_CNS = frozenset({CN_REALTIME, CN_MINUTE, CN_HOUR, CN_DAY})
"""Data uploads: CP holds DataTime and per-factor values; for 2051/2061/2031 DataTime is the start of the period."""
PERIOD_SECONDS = {CN_MINUTE: 60, CN_HOUR: 3600, CN_DAY: 86400}
CN_NAMES = {
    CN_REALTIME: "real-time data", CN_MINUTE: "minute data", CN_HOUR: "hour data", CN_DAY: "day data",
    CN_SET_TIMEOUT: "set timeout and retries", CN_GET_TIME: "get time", CN_SET_TIME: "set time",
    CN_GET_RTD_INTERVAL: "get real-time interval", CN_SET_RTD_INTERVAL: "set real-time interval",
    CN_GET_MIN_INTERVAL: "get minute interval", CN_SET_MIN_INTERVAL: "set minute interval",
    CN_REQUEST_ANSWER: "request answer", CN_EXECUTION_RESULT: "execution result",
    CN_NOTIFY_ANSWER: "notify answer", CN_DATA_ANSWER: "data answer", CN_HEARTBEAT: "heartbeat",
}

ST_SYSTEM = "91"
"""ST of the system-interaction replies (9011-9014)."""
DEFAULT_OVERTIME_S = 10
DEFAULT_RECOUNT = 3

# --- Return codes ------------------------------------------------------------------------------
QN_RTN = {1: "ready to execute", 2: "request refused", 3: "PW wrong", 4: "MN wrong", 5: "ST wrong",
          6: "Flag wrong", 7: "QN wrong", 8: "CN wrong", 9: "CRC wrong", 100: "unknown error"}
QNRTN_READY, QNRTN_REFUSED, QNRTN_PW, QNRTN_MN = 1, 2, 3, 4
EXE_RTN = {1: "success", 2: "failed, cause unknown", 3: "request condition wrong", 4: "communication timeout",
           5: "system busy", 6: "system time wrong", 100: "no data"}
EXERTN_SUCCESS, EXERTN_FAILED, EXERTN_NO_DATA = 1, 2, 100

# --- Data flags ----------------------------------------------------------------------------------
DATA_FLAGS = {
    "N": "normal", "F": "stopped", "M": "maintenance", "S": "manual value", "D": "fault",
    "C": "calibrating", "T": "over range", "B": "communication error",
}
"""The `-Flag` values of a factor (HJ 212-2017)."""
FACTOR_KEYS = ("Rtd", "Min", "Avg", "Max", "Cou", "Flag")
"""Per-factor item suffixes: `a05001-Avg`, `a05001-Flag`, ..."""

# --- Factors ---------------------------------------------------------------------------------------
MOLAR_VOLUME_L = 22.414
"""L/mol of an ideal gas at 273.15 K and 101.325 kPa, the standard's reference state."""
MASS_UNITS = {"mg/m3": 1.0, "ug/m3": 1e-3, "ng/m3": 1e-6}
"""Mass concentration units, in mg/m3."""


@dataclass(frozen=True, slots=True)
class Factor:
    """A monitored quantity: its HJ 212 code, the ghgnet species it carries and its unit on the wire."""

    code: str
    species: str
    unit: str


FACTORS: dict[str, Factor] = {
    "a05001": Factor("a05001", "co2", "mg/m3"),
    "a05002": Factor("a05002", "ch4", "ng/m3"),
}
"""The standard's greenhouse-gas codes (Appendix B). It has no N2O code: agree one with the platform
and configure it (e.g. `Factor("xN2O01", "n2o", "ppb")`)."""


def ppm_to_mg_m3(ppm: float, molar_mass: float) -> float:
    """Mole fraction (ppm) -> mass concentration (mg/m3) at 273.15 K, 101.325 kPa: ppm x M / 22.414.
    E.g. CO2 400 ppm x 44.01 / 22.414 = 785.4 mg/m3."""
    return ppm * molar_mass / MOLAR_VOLUME_L


def mg_m3_to_ppm(mg_m3: float, molar_mass: float) -> float:
    """The inverse of `ppm_to_mg_m3`."""
    return mg_m3 * MOLAR_VOLUME_L / molar_mass


def to_wire_value(value: float, species: str, unit: str) -> float:
    """A value in the species' ghgnet unit (CO2 ppm, CH4 ppb, ...) -> `unit` on the HJ 212 wire."""
    sp = species_registry.get(species)
    if unit == sp.unit:
        return value
    ppm = value * sp.mole_fraction_scale / 1e-6
    if unit in MASS_UNITS:
        return ppm_to_mg_m3(ppm, sp.molar_mass) / MASS_UNITS[unit]
    if unit in species_registry.MOLE_FRACTION_UNITS:
        return ppm * 1e-6 / species_registry.MOLE_FRACTION_UNITS[unit]
    raise ValueError(f"unit {unit!r}: not one of {', '.join([*MASS_UNITS, *species_registry.MOLE_FRACTION_UNITS])}")


def from_wire_value(value: float, species: str, unit: str) -> float:
    """A value in `unit` on the HJ 212 wire -> the species' ghgnet unit (the inverse of `to_wire_value`)."""
    sp = species_registry.get(species)
    if unit == sp.unit:
        return value
    if unit in MASS_UNITS:
        ppm = mg_m3_to_ppm(value * MASS_UNITS[unit], sp.molar_mass)
    elif unit in species_registry.MOLE_FRACTION_UNITS:
        ppm = value * species_registry.MOLE_FRACTION_UNITS[unit] / 1e-6
    else:
        raise ValueError(f"unit {unit!r}: not one of {', '.join([*MASS_UNITS, *species_registry.MOLE_FRACTION_UNITS])}")
    return ppm * 1e-6 / sp.mole_fraction_scale


# --- ICOS flags and reasons <-> HJ 212 data flags -------------------------------------------------
ICOS_VALID = frozenset({"U", "O", "R"})
"""ICOS letters of valid data: U before manual QC, O after, R propagated from a valid hour."""

ICOS_REASON_TO_HJ: dict[str, str] = {
    "maintenance": "M",
    "flush": "C",            # flushing follows a valve switch, nearly always to or from a calibration gas
    "interlock": "D",
    "status": "D",
    "cavity_pressure": "D",
    "cavity_temp": "D",
    "valve_mismatch": "D",
    "std_too_high": "D",
    "spike": "D",
    "uncalibrated": "D",
    "too_few_samples": "B",
    "no_data": "B",
    "out_of_range": "T",
}
"""Default table: which HJ 212 flag a station reason code means. A config may override entries."""
HJ_FLAG_PRECEDENCE = "MCDTBFS"
"""When several reasons map to different flags, the first in this order wins (maintenance above all)."""


def hj212_flag(icos_flag: str, reasons: Iterable[str] = (), table: Mapping[str, str] | None = None) -> str:
    """The HJ 212 data flag for a minute with ICOS `icos_flag` and station `reasons`.

    Valid letters give N whatever the reasons; invalid ones (N, K, H) give the highest-precedence
    flag among their reasons' mapped flags, D (fault) when no reason maps.
    """
    if icos_flag in ICOS_VALID:
        return "N"
    table = ICOS_REASON_TO_HJ if table is None else table
    mapped = {table[r] for r in reasons if r in table}
    for letter in HJ_FLAG_PRECEDENCE:
        if letter in mapped:
            return letter
    return "D"


HJ_TO_ICOS: dict[str, tuple[str, tuple[str, ...]]] = {
    "N": ("U", ()),
    "F": ("N", ("hj212_stopped",)),
    "M": ("N", ("maintenance",)),
    "S": ("N", ("hj212_manual_value",)),
    "D": ("N", ("status",)),
    "C": ("N", ("hj212_calibrating",)),
    "T": ("N", ("out_of_range",)),
    "B": ("N", ("hj212_comm_error",)),
}
"""What a logger's data flag means at central: ICOS letter and reason codes (station reason codes
where one fits, `hj212_*` where none does)."""


def icos_flag(hj_flag: str) -> tuple[str, tuple[str, ...]]:
    """ICOS letter and reasons for an HJ 212 data flag; an unknown letter is invalid data, named."""
    return HJ_TO_ICOS.get(hj_flag, ("N", (f"hj212_flag_{hj_flag}" if hj_flag.isalnum() else "hj212_flag_unknown",)))
