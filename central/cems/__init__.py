"""Stack CEMS at central (issue 18): the accounting method and the monthly comparison with CEMS.

- `accounting`: E = sum FC x NCV x CC x OF x 44/12 per unit-month (coal's default carbon content).
- `activity_csv`: the monthly activity file, every problem named by file, row and field.
- `comparison`: CEMS hours -> months; CEMS vs accounting rows (relative difference, availability,
  substituted hours).
- `comparison_csv`: those rows as CSV.
"""

from central.cems.accounting import DEFAULT_COAL_CARBON_TC_PER_GJ, AccountingMonth, FuelMonth, accounting_months
from central.cems.activity_csv import ActivityError, read_activity_csv
from central.cems.comparison import CemsHour, CemsMonth, ComparisonRow, cems_months, compare_months
from central.cems.comparison_csv import write_comparison_csv

__all__ = [
    "DEFAULT_COAL_CARBON_TC_PER_GJ",
    "AccountingMonth",
    "ActivityError",
    "CemsHour",
    "CemsMonth",
    "ComparisonRow",
    "FuelMonth",
    "accounting_months",
    "cems_months",
    "compare_months",
    "read_activity_csv",
    "write_comparison_csv",
]
