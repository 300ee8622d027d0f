"""gc.results (GcResults): a file-drop driver, so its protocol is files in -> readings out. It
writes nothing to the instrument: `expected_protocol` with an empty script proves that, while the
files it reads are real files in a real folder. Layouts per drivers/gc/layouts.py (GCWerks as
OpenGHG reads it; ChemStation's text report as in a public example)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from drivers.gc.results import GcResults, GcResultsConfig
from drivers.testing import expected_protocol
from drivers.transport import TransportError

GCWERKS = """Created: 01 Mar 26 08:20 GMT
site-gc
     Scale:  --   -- --  -- --  --   -- --  -- --            --           --   WMO-CO2-X2019   --   WMO-CH4-X2004A   --   NOAA-2006A   --
      Unit:  --   -- --  -- --  --   -- --  -- --            --           --   ppm   --   ppb   --   ppb   --
       Year  yyyy mm dd  hh mi  ryyy rm rd  rh ri         Inlet     Standard   CO2 Flag   CH4 Flag   N2O Flag
2026.161644  2026 03 01  16 05  2026 03 01  16 00      ambient        std-1   425.123 ----   2012.40 ----   337.21 F---
2026.161654  2026 03 01  16 10  2026 03 01  16 10        std-1        std-1   410.010 ----   1950.20 ----      nan ----
"""

CHEMSTATION = """Data File C:\\Chem32\\1\\DATA\\GHG\\20260301-160500.D
Sample Name: ambient

=====================================================================
Acq. Operator   : ops                             Seq. Line :   1
Injection Date  : 03/01/2026 04:05:00 PM            Inj :   1
=====================================================================
                         External Standard Report
=====================================================================

Signal 1: FID1 A

RetTime   Type       Area   Amt/Area     Amount Grp Name
  [min]            [pA*s]      ratio      [ppm]
-------|------|----------|----------|----------|--|------------------
  1.200     BB  1319.6821  3.2258e-1   425.7039    CO2
  2.100     BB  6261.4315  3.2258e-1     2.0198    CH4
  2.900     BB    12.0000  1.0000e+0     0.1000    ?

1 Warnings or Errors :

Warning : Calibration warnings (see calibration table listing)

=====================================================================
                          *** End of Report ***
"""


def config(folder: Path, layout: str = "gcwerks", **more) -> dict:
    return {"id": "gc-1", "driver": "gc.results", "folder": str(folder), "layout": layout,
            "timezone": "Asia/Shanghai", "streams": {"std-1": "cal:std-1"}, **more}


def drop(folder: Path, name: str, text: str, encoding: str = "ascii") -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def test_a_gcwerks_export_becomes_one_reading_per_injection_once_the_file_is_still(tmp_path):
    drop(tmp_path, "gc-1605.C", GCWERKS)
    with expected_protocol(GcResults, config(tmp_path), []) as drv:
        assert drv.poll().readings == []  # first sight: it may still be growing
        result = drv.poll()
    sample, standard = result.readings
    assert result.problems == []
    assert sample.time == datetime(2026, 3, 1, 8, 5, tzinfo=UTC) and sample.stream == "inlet:ambient"
    assert sample.values == {"co2_dry": 425.123, "ch4_dry": 2012.4}
    assert sample.status_flags == ("n2o_flagged",) and sample.status_ok
    assert standard.stream == "cal:std-1" and standard.values == {"co2_dry": 410.01, "ch4_dry": 1950.2}
    assert [p.name for p in (tmp_path / "done").iterdir()] == ["20260301T081000Z_gc-1605.C"]
    assert not (tmp_path / "gc-1605.C").exists()


def test_a_chemstation_report_in_utf16_with_a_warning(tmp_path):
    drop(tmp_path, "20260301-160500-ambient.TXT", CHEMSTATION.replace("\n", "\r\n"), "utf-16")
    with expected_protocol(GcResults, config(tmp_path, "chemstation"), []) as drv:
        drv.poll()
        (r,) = drv.poll().readings
    assert r.time == datetime(2026, 3, 1, 8, 5, tzinfo=UTC) and r.stream == "inlet:ambient"
    assert r.values == {"co2_dry": 425.7039, "ch4_dry": pytest.approx(2019.8)}  # CH4 ppm -> ppb
    assert r.status_ok and r.status_flags == ("gc_warning",)


def test_a_chemstation_error_makes_the_injection_not_ok(tmp_path):
    drop(tmp_path, "r.TXT", CHEMSTATION.replace("Warning : Calibration", "Error : Calibration"))
    with expected_protocol(GcResults, config(tmp_path, "chemstation"), []) as drv:
        drv.poll()
        (r,) = drv.poll().readings
    assert not r.status_ok and r.status_flags == ("gc_error",)


@pytest.mark.parametrize(("text", "reason"), [
    (GCWERKS.replace("425.123", "4x5.1"), "CO2: not a number: '4x5.1'"),
    (GCWERKS.replace("Unit:", "Units"), "`Unit:` row missing"),
    (GCWERKS.replace("   ppm   ", "   mg/m3   "), "unit 'mg/m3' is not one of"),
    ("hello\n", "no column row"),
])
def test_a_malformed_file_goes_to_quarantine_with_its_reason_and_the_others_are_read(tmp_path, text, reason):
    drop(tmp_path, "bad.C", text)
    drop(tmp_path, "good.C", GCWERKS)
    with expected_protocol(GcResults, config(tmp_path), []) as drv:
        drv.poll()
        result = drv.poll()
    assert len(result.readings) == 2
    assert len(result.problems) == 1 and "bad.C quarantined" in result.problems[0] and reason in result.problems[0]
    assert reason in (tmp_path / "quarantine" / "bad.C.reason.txt").read_text()
    assert (tmp_path / "quarantine" / "bad.C").exists()


def test_a_half_written_file_waits_until_it_is_finished(tmp_path):
    path = drop(tmp_path, "gc.C", GCWERKS[:-40])
    with expected_protocol(GcResults, config(tmp_path), []) as drv:
        assert drv.poll().readings == [] and drv.poll().readings == []
        path.write_text(GCWERKS)
        assert drv.poll().readings == []
        assert len(drv.poll().readings) == 2


def test_a_file_that_stays_cut_is_quarantined(tmp_path):
    drop(tmp_path, "gc.C", GCWERKS[:-40])
    with expected_protocol(GcResults, config(tmp_path, max_incomplete_polls=3), []) as drv:
        results = [drv.poll() for _ in range(5)]
    assert all(r.readings == [] for r in results)
    assert "the file is cut" in results[3].problems[0] and (tmp_path / "quarantine" / "gc.C").exists()


def test_a_duplicate_file_gives_nothing_twice_and_a_cumulative_export_only_its_new_rows(tmp_path):
    first, second = GCWERKS.splitlines(keepends=True)[5:]
    head = "".join(GCWERKS.splitlines(keepends=True)[:5])
    drop(tmp_path, "a.C", head + first)
    with expected_protocol(GcResults, config(tmp_path), []) as drv:
        drv.poll()
        assert len(drv.poll().readings) == 1
        drop(tmp_path, "copy-of-a.C", head + first)
        drop(tmp_path, "cumulative.C", head + first + second)
        drv.poll()
        result = drv.poll()
    (r,) = result.readings
    assert r.stream == "cal:std-1"
    assert any("copy-of-a.C quarantined" in p and "duplicate" in p for p in result.problems)
    assert any("cumulative.C: 1 injection(s)" in p for p in result.problems)


def test_after_a_crash_between_reading_and_storing_resume_delivers_again_exactly_what_the_store_lacks(tmp_path):
    drop(tmp_path, "gc.C", GCWERKS)
    with expected_protocol(GcResults, config(tmp_path), []) as drv:
        drv.poll()
        lost = drv.poll().readings  # read and archived; the station died before storing them
    assert len(lost) == 2 and not any(tmp_path.glob("*.C"))
    with expected_protocol(GcResults, config(tmp_path), []) as drv:
        drv.resume(None)  # the store holds nothing of this device
        assert drv.poll().readings == lost
        assert drv.poll().readings == []
    with expected_protocol(GcResults, config(tmp_path), []) as drv:
        drv.resume(lost[0].time)  # the store holds the first
        assert drv.poll().readings == lost[1:]
    with expected_protocol(GcResults, config(tmp_path), []) as drv:
        drv.resume(lost[1].time)
        assert drv.poll().readings == []


def test_copies_in_progress_are_left_alone(tmp_path):
    drop(tmp_path, ".gc.C", GCWERKS)
    drop(tmp_path, "gc.C.part", GCWERKS)
    with expected_protocol(GcResults, config(tmp_path), []) as drv:
        assert drv.poll().readings == [] and drv.poll().readings == []
    assert (tmp_path / ".gc.C").exists() and (tmp_path / "gc.C.part").exists()


def test_a_missing_folder_is_a_lost_link(tmp_path):
    cfg = GcResultsConfig.model_validate(config(tmp_path / "gone"))
    drv = GcResults(cfg, GcResults.make_transport(cfg))
    with pytest.raises(TransportError, match="does not exist"):
        drv.open()
    assert cfg.url == (tmp_path / "gone").as_uri()


@pytest.mark.parametrize(("change", "message"), [
    ({"streams": {"std-1": "standard"}}, "a stream is inlet:"),
    ({"species": {"T": "cavity_temp"}}, "not mole-fraction species"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
])
def test_a_bad_config_is_refused(tmp_path, change, message):
    with pytest.raises(ValidationError, match=message):
        GcResultsConfig.model_validate({**config(tmp_path), **change})
