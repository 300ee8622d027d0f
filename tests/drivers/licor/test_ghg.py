"""LI-COR .ghg archives: the high-rate table with UTC times from Seconds/Nanoseconds, the INI
metadata, the optional biomet table, and named errors for broken archives."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from drivers.licor.ghg import GhgError, read_ghg

DATA = (
    "Model:\tLI-7200 Enclosed CO2/H2O Analyzer\nSN:\t72H-0901\nInstrument:\tAIU-2036\nFile Type:\t2\n"
    "Software Version:\t8.8.15\nTimestamp:\t19:00:00\nTimezone:\tEtc/GMT-1\n"
    "DATAH\tSeconds\tNanoseconds\tSequence Number\tDiagnostic Value\tDate\tTime\tCO2 (umol/mol)\t"
    "H2O (mmol/mol)\tAux 1 - U (m/s)\tAux 2 - V (m/s)\tAux 3 - W (m/s)\tAux 4 - SOS (m/s)\tCHK\n"
    "DATA\t1556301600\t0\t1\t8191\t2019-04-26\t19:00:00:000\t407.414\t11.4844\t1.2\t0.1\t0.05\t343.1\t217\n"
    "DATA\t1556301600\t100000000\t2\t8191\t2019-04-26\t19:00:00:100\t407.52\t11.49\t1.25\t0.12\t0.02\t343.2\t201\n"
)
METADATA = "[Site]\nsite_name=Marsh\naltitude=2\n[Timing]\nacquisition_frequency=10\n"
BIOMET = ("Instrument:\t192.168.13.140\nDATAH\tDATE\tTIME\tTA_1_1_1(C)\tRH_1_1_1(%)\tCHK\n"
          "DATA\t2019-04-26\t19:00:00:000\t10.6779\t95.66\t181\n")


def _archive(tmp_path, members):
    path = tmp_path / "2019-04-26T190000_AIU-2036.ghg"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def test_read_a_ghg_archive(tmp_path):
    path = _archive(tmp_path, {"x.data": DATA, "x.metadata": METADATA, "x-biomet.data": BIOMET,
                               "x-biomet.metadata": "[Biomet]\n"})
    g = read_ghg(path)
    t = g.data
    assert len(t) == 2
    assert str(t.time[0]) == "2019-04-26T18:00:00.000000000"  # Seconds is UTC; Time is local (GMT-1 = UTC+1)
    assert str(t.time[1]) == "2019-04-26T18:00:00.100000000"
    np.testing.assert_allclose(t.column("CO2 (umol/mol)"), [407.414, 407.52])
    assert t.units[t.names.index("Aux 3 - W (m/s)")] == "m/s"
    assert t.column("Time")[1] == "19:00:00:100"  # text stays text
    assert t.header["Model"] == "LI-7200 Enclosed CO2/H2O Analyzer" and t.header["Timezone"] == "Etc/GMT-1"
    assert g.metadata["Timing"]["acquisition_frequency"] == "10" and g.metadata["Site"]["site_name"] == "Marsh"
    assert g.biomet is not None and g.biomet.column("TA_1_1_1(C)")[0] == pytest.approx(10.6779)


@pytest.mark.parametrize("members, message", [
    ({"x.data": DATA}, "needs a .data and a .metadata member, has: x.data"),
    ({"x.data": DATA.replace("DATAH", "HEADER"), "x.metadata": METADATA}, "line 9: DATA before any DATAH"),
    ({"x.data": "Model:\tx\n", "x.metadata": METADATA}, "no DATAH line"),
    ({"x.data": DATA + "DATA\t1\t2\n", "x.metadata": METADATA}, "DATA row 3: 2 fields, DATAH names 13"),
    ({"x.data": DATA, "x.metadata": "site_name=x\n"}, "not an INI file"),
])
def test_broken_archives_are_named(tmp_path, members, message):
    with pytest.raises(GhgError, match=message):
        read_ghg(_archive(tmp_path, members))


def test_not_a_zip(tmp_path):
    p = tmp_path / "x.ghg"
    p.write_text("hello")
    with pytest.raises(GhgError, match="not a .ghg \\(zip\\) archive"):
        read_ghg(p)
