"""CEMS against the accounting method per month: hours summed to months, the relative difference by
hand, one-sided months, and the CSV."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest

from central.cems import AccountingMonth, CemsHour, CemsMonth, cems_months, compare_months, write_comparison_csv


def test_hours_sum_to_months_with_availability_and_substituted_hours():
    start = datetime(2026, 3, 31, 22)
    hours = [CemsHour("unit-1", start + timedelta(hours=i), 400_000.0, 1.0, measured=i != 1, substituted=i == 1)
             for i in range(4)]
    hours.append(CemsHour("unit-1", start + timedelta(hours=4), 0.0, 0.0, measured=False, substituted=False))
    march, april = cems_months(hours)
    assert (march.month, march.mass_t, march.operating_hours, march.substituted_hours) == ("2026-03", 800.0, 2, 1)
    assert march.availability == 0.5
    assert (april.month, april.mass_t, april.operating_hours, april.measured_hours) == ("2026-04", 800.0, 2, 2)


def test_relative_difference_by_hand_and_one_sided_months():
    cems = [CemsMonth("unit-1", "2026-03", 310_000.0, 700, 690, 10), CemsMonth("unit-1", "2026-05", 1.0, 1, 1, 0)]
    acc = [AccountingMonth("unit-1", "2026-03", 302_132.7408, ("coal",), False),
           AccountingMonth("unit-1", "2026-04", 354_600.3, ("coal",), True)]
    march, april, may = compare_months(cems, acc)
    # (310,000 - 302,132.7408) / 302,132.7408 = 2.6039 %
    assert march.difference_t == pytest.approx(7_867.2592)
    assert march.relative_difference == pytest.approx(0.026039, abs=1e-6)
    assert march.availability == pytest.approx(690 / 700) and march.substituted_hours == 10
    assert april.cems_t is None and april.relative_difference is None and april.note == "no CEMS data"
    assert may.accounting_t is None and may.note == "no activity data"


def test_zero_accounting_mass_has_no_relative_difference():
    (row,) = compare_months([CemsMonth("u", "2026-01", 5.0, 1, 1, 0)],
                            [AccountingMonth("u", "2026-01", 0.0, (), False)])
    assert row.relative_difference is None and "0" in row.note


def test_comparison_csv(tmp_path):
    rows = compare_months([CemsMonth("unit-1", "2026-03", 310_000.0, 700, 690, 10)],
                          [AccountingMonth("unit-1", "2026-03", 302_132.7408, ("coal",), False),
                           AccountingMonth("unit-1", "2026-04", 354_600.3, ("coal",), True)])
    out = io.StringIO()
    write_comparison_csv(rows, out)
    table = list(csv.reader(io.StringIO(out.getvalue())))
    assert table[0] == ["unit", "month", "cems_t", "accounting_t", "difference_t", "relative_difference_pct",
                        "availability_pct", "substituted_hours", "carbon_content_default", "note"]
    assert table[1] == ["unit-1", "2026-03", "310000.000", "302132.741", "7867.259", "2.60", "98.57", "10", "no", ""]
    assert table[2] == ["unit-1", "2026-04", "", "354600.300", "", "", "", "", "yes", "no CEMS data"]
    path = tmp_path / "compare.csv"
    write_comparison_csv(rows, path)
    assert path.read_text(encoding="utf-8").replace("\r\n", "\n") == out.getvalue().replace("\r\n", "\n")
