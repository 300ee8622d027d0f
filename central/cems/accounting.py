"""The accounting (calculation) method for a combustion unit's CO2, month by month.

E (t CO2) = sum over fuels of FC (t) * NCV (GJ/t) * CC (t C/GJ) * OF * 44/12

FC fuel consumed, NCV its net calorific value as received, CC its carbon content per unit heat,
OF the oxidised fraction; 44/12 the CO2/C mass ratio. This is the fossil-fuel combustion formula
of China's MEE guideline for power generation facilities ("企业温室气体排放核算与报告指南 发电设施",
2022 revision, the formula being the IPCC 2006 Vol. 2 Ch. 2 tier-2 form: consumption x heating value
x carbon content per heat x oxidation x 44/12).

When a coal's carbon content was not measured, the guideline's penalising default applies:
0.03085 t C/GJ (DOMAIN.md: "China's default carbon content for coal 0.03085 tC/GJ (2022)"); measured
coals are typically 0.025-0.027 t C/GJ, so a defaulted month reads well above the stack (DOMAIN.md:
a seven-plant study found 2.5 % difference with measured parameters, 19.6 % with defaults). The
guideline's own text was not in the reference corpus: the default is the brief's number, and the
activity file can always give a measured value instead. Only fuels named "coal" take the default;
any other fuel must give its carbon content. The oxidised fraction is always given (no default).

Not counted here (and why a stack can see more): wet-limestone desulphurisation releases CO2 from
the limestone (CaCO3 + SO2 -> CaSO3 + CO2), which the stack measures and a fuel account misses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CO2_PER_C = 44.0 / 12.0
DEFAULT_COAL_CARBON_TC_PER_GJ = 0.03085
DEFAULTABLE_FUELS = frozenset({"coal"})


@dataclass(frozen=True, slots=True)
class FuelMonth:
    """One fuel burnt by one unit in one month (month: "YYYY-MM"); `carbon_tc_per_gj` None means
    not measured (the default applies, coal only)."""

    unit: str
    month: str
    fuel: str
    consumption_t: float
    ncv_gj_per_t: float
    carbon_tc_per_gj: float | None
    oxidation_fraction: float

    @property
    def carbon_defaulted(self) -> bool:
        return self.carbon_tc_per_gj is None

    @property
    def carbon_used_tc_per_gj(self) -> float:
        if self.carbon_tc_per_gj is not None:
            return self.carbon_tc_per_gj
        if self.fuel.strip().lower() not in DEFAULTABLE_FUELS:
            raise ValueError(f"{self.unit} {self.month} {self.fuel}: no carbon content and no default for this fuel")
        return DEFAULT_COAL_CARBON_TC_PER_GJ

    @property
    def emission_t(self) -> float:
        return self.consumption_t * self.ncv_gj_per_t * self.carbon_used_tc_per_gj * self.oxidation_fraction * CO2_PER_C


@dataclass(frozen=True, slots=True)
class AccountingMonth:
    """A unit's month by the accounting method: CO2 (t), the fuels counted, and whether any fuel's
    carbon content was the default."""

    unit: str
    month: str
    mass_t: float
    fuels: tuple[str, ...]
    carbon_defaulted: bool


def accounting_months(rows: Iterable[FuelMonth]) -> list[AccountingMonth]:
    """Sum fuels per (unit, month), in (unit, month) order."""
    groups: dict[tuple[str, str], list[FuelMonth]] = {}
    for row in rows:
        groups.setdefault((row.unit, row.month), []).append(row)
    return [AccountingMonth(unit, month, sum(r.emission_t for r in fuels), tuple(r.fuel for r in fuels),
                            any(r.carbon_defaulted for r in fuels))
            for (unit, month), fuels in sorted(groups.items())]
