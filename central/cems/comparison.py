"""CEMS against the accounting method, month by month, as pure functions returning rows.

relative difference = (E_CEMS - E_accounting) / E_accounting (DOMAIN.md; a positive value: the stack
saw more than the fuel account). Each row also carries the CEMS month's data availability
(measured operating hours / operating hours) and its substituted hours, so a reader can tell a
difference of the data from a difference of the methods.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from central.cems.accounting import AccountingMonth


@dataclass(frozen=True, slots=True)
class CemsHour:
    """One hour of a unit's CEMS record as central stores it: start (UTC), mass (kg), operating
    time (h), and whether its values were measured or substituted."""

    unit: str
    hour: datetime
    mass_kg: float
    operating_hours: float
    measured: bool
    substituted: bool


@dataclass(frozen=True, slots=True)
class CemsMonth:
    """A unit's month by CEMS: mass (t), operating hours (count of hours with operation), of which
    measured and substituted."""

    unit: str
    month: str
    mass_t: float
    operating_hours: int
    measured_hours: int
    substituted_hours: int

    @property
    def availability(self) -> float:
        return self.measured_hours / self.operating_hours if self.operating_hours else 1.0


def cems_months(hours: Iterable[CemsHour]) -> list[CemsMonth]:
    """Sum hourly CEMS records into calendar months (UTC), in (unit, month) order."""
    sums: dict[tuple[str, str], list[float]] = {}
    for h in hours:
        s = sums.setdefault((h.unit, h.hour.strftime("%Y-%m")), [0.0, 0, 0, 0])
        s[0] += h.mass_kg
        operating = h.operating_hours > 0
        s[1] += operating
        s[2] += operating and h.measured
        s[3] += operating and h.substituted
    return [CemsMonth(unit, month, s[0] / 1000.0, int(s[1]), int(s[2]), int(s[3]))
            for (unit, month), s in sorted(sums.items())]


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One unit-month: None where a side has no data (`note` says which)."""

    unit: str
    month: str
    cems_t: float | None
    accounting_t: float | None
    availability: float | None
    substituted_hours: int | None
    carbon_defaulted: bool | None
    note: str = ""

    @property
    def difference_t(self) -> float | None:
        if self.cems_t is None or self.accounting_t is None:
            return None
        return self.cems_t - self.accounting_t

    @property
    def relative_difference(self) -> float | None:
        diff = self.difference_t
        if diff is None or not self.accounting_t:
            return None
        return diff / self.accounting_t


def compare_months(cems: Iterable[CemsMonth], accounting: Iterable[AccountingMonth]) -> list[ComparisonRow]:
    """One row per (unit, month) found on either side, in (unit, month) order."""
    by_cems = {(m.unit, m.month): m for m in cems}
    by_acc = {(a.unit, a.month): a for a in accounting}
    rows = []
    for key in sorted(by_cems.keys() | by_acc.keys()):
        c, a = by_cems.get(key), by_acc.get(key)
        note = "no activity data" if a is None else "no CEMS data" if c is None else ""
        if a is not None and a.mass_t == 0 and c is not None:
            note = "accounting mass is 0: no relative difference"
        rows.append(ComparisonRow(
            unit=key[0], month=key[1],
            cems_t=None if c is None else c.mass_t,
            accounting_t=None if a is None else a.mass_t,
            availability=None if c is None else c.availability,
            substituted_hours=None if c is None else c.substituted_hours,
            carbon_defaulted=None if a is None else a.carbon_defaulted,
            note=note,
        ))
    return rows
