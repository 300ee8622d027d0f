"""The LI-78xx `.data` reader: CHK checked on rows from a real analyzer's file and on the files the
simulator writes; a refused row is named by line and the rest kept."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from drivers.licor.datafile import checksum, data_row, parse_data, read_data_file, readings
from drivers.licor.li78xx import LI7810Config, LI7820Config
from ghgnet.clock import ManualClock
from simulators.licor.li78xx import LicorBench, LicorInstrument

# The head of Qepanna/goFlux inst/extdata/LI7820/LI7820.data (an LI-7820, software 2.1.41): real
# rows with the CHK the analyzer wrote.
HEADER = (
    "Model:\tLI-7820\nSN:\tTG20-01079\nSoftware Version:\t2.1.41\nTimestamp:\t2022-09-28 10:34:19\n"
    "Timezone:\tEurope/Copenhagen\n"
    "DATAH\tSECONDS\tNANOSECONDS\tNDX\tDIAG\tREMARK\tDATE\tTIME\tH2O\tN2O\tCAVITY_P\tCAVITY_T\tLASER_PHASE_P\t"
    "LASER_T\tRESIDUAL\tRING_DOWN_TIME\tTHERMAL_ENCLOSURE_T\tPHASE_ERROR\tLASER_T_SHIFT\tINPUT_VOLTAGE\tCHK\n"
    "DATAU\tsecs\tnsecs\tindex\tdiag\t\tdate\ttime\tppm\tppb\tkPa\t°C\tkPa\t°C\t\tµsecs\t°C\tcounts\t°C\tV\tCHK\n"
)
ROWS = [
    'DATA\t1664361470\t560526132\t74125\t0\t""\t2022-09-28\t12:37:50\t11476.088\t347.71262\t39.8265\t55.0003\t'
    "31.6147\t34.8853\t0.00217898\t38.4517\t54.4998\t3.9\t-0.10586\t14.2748\t 93",
    'DATA\t1664361471\t560526132\t74135\t0\t""\t2022-09-28\t12:37:51\t11475.137\t347.39243\t39.8285\t55.0003\t'
    "31.616\t34.8853\t0.00218072\t38.453\t54.4998\t-11.1\t-0.10586\t14.2747\t 57",
    'DATA\t1664361472\t560413837\t74145\t0\t""\t2022-09-28\t12:37:52\t11478.623\t347.02863\t39.8265\t55.0003\t'
    "31.6149\t34.8853\t0.00217136\t38.4533\t54.4998\t-1.9\t-0.10586\t14.2743\t127",
]


def text(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode("utf-8")


def test_the_analyzers_own_rows_pass_the_checksum():
    for row in ROWS:
        prefix, chk = row.rsplit("\t", 1)
        assert checksum((prefix + "\t").encode()) == int(chk)
        assert data_row(row.split("\t")[1:-1]) == row  # the same row, CHK right-aligned in 3
    data = parse_data(text(*ROWS), "LI7820.data")
    assert data.problems == []
    assert data.header == {"Model": "LI-7820", "SN": "TG20-01079", "Software Version": "2.1.41",
                           "Timestamp": "2022-09-28 10:34:19", "Timezone": "Europe/Copenhagen"}
    assert data.units["N2O"] == "ppb" and data.units["CAVITY_T"] == "°C"
    assert [r.line for r in data.records] == [8, 9, 10]
    assert data.records[0].fields["N2O"] == "347.71262"


def test_a_row_with_a_wrong_chk_is_refused_by_line_and_the_rest_kept():
    tampered = ROWS[1].replace("347.39243", "347.39244")
    data = parse_data(text(ROWS[0], tampered, ROWS[2]), "site.data")
    assert [r.line for r in data.records] == [8, 10]
    assert len(data.problems) == 1
    assert data.problems[0].startswith("site.data:9: CHK 57 where the row sums to 58, refused")


@pytest.mark.parametrize("line,message", [
    (ROWS[0].rsplit("\t", 2)[0] + "\t 93", "19 fields for 20 columns"),
    (ROWS[0][:-3] + "abc", "CHK 'abc' is not a number"),
    ("GARBAGE\twhatever", "not a header, DATAH, DATAU or DATA line"),
])
def test_malformed_lines_are_named(line, message):
    data = parse_data(text(ROWS[0], line, ROWS[2]), "x.data")
    assert len(data.records) == 2 and len(data.problems) == 1
    assert data.problems[0].startswith("x.data:9: ") and message in data.problems[0]


def test_data_before_datah_is_refused_and_a_second_block_has_its_own_columns():
    short_head = "DATAH\tSECONDS\tNANOSECONDS\tDIAG\tN2O\tCHK\nDATAU\tsecs\tnsecs\tdiag\tppb\tCHK\n"
    row = data_row(["1664361500", "0", "0", "340.5"])
    raw = (ROWS[0] + "\n").encode() + text(ROWS[0]) + (short_head + row + "\n").encode()
    data = parse_data(raw, "joined.data")
    assert data.problems[0].startswith("joined.data:1: DATA row before any DATAH line refused")
    assert [r.fields.get("N2O") for r in data.records] == ["347.71262", "340.5"]
    assert data.columns == ["SECONDS", "NANOSECONDS", "DIAG", "N2O", "CHK"]


def test_crlf_line_ends_and_a_latin1_remark_are_read():
    remark = 'DATA\t1664361470\t0\t1\t0\t"fl\xe4sk"\t1.5\t'
    row = remark.encode("latin-1")
    row += f"{checksum(row):>3}".encode()
    head = b"DATAH\tSECONDS\tNANOSECONDS\tNDX\tDIAG\tREMARK\tN2O\tCHK\r\n"
    data = parse_data(head + row + b"\r\n", "crlf.data")
    assert data.problems == [] and data.records[0].fields["REMARK"] == '"fläsk"'


def test_readings_convert_like_the_driver():
    data = parse_data(text(*ROWS), "LI7820.data")
    got, problems = readings(data, LI7820Config(id="licor-1", url="mqtt://127.0.0.1:1883"))
    assert problems == []
    assert got[0].time == datetime(2022, 9, 28, 10, 37, 50, 560526, tzinfo=UTC)
    assert got[0].values["n2o_dry"] == 347.71262 and got[0].values["h2o"] == pytest.approx(1.1476088)
    assert got[0].values["cell_pressure"] == 398.265 and got[0].status_ok


def test_files_the_simulator_writes_read_back_with_every_record(tmp_path):
    clock = ManualClock(datetime(2026, 3, 1, 23, 58, tzinfo=UTC))
    cfg = LicorInstrument(id="licor-1", model="licor.li7810", data_dir=tmp_path / "data", serial="TG10-01449",
                          timezone="Asia/Shanghai")
    sim = LicorBench.build(cfg, clock)
    sim.start()
    try:
        clock.advance(240)  # across midnight UTC: two files
        deadline = time.monotonic() + 10
        while len(sim.ledger) < 240 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sim.stop()
    files = sim.data_files
    assert [f.name for f in files] == ["TG10-01449-2026-03-01.data", "TG10-01449-2026-03-02.data"]
    config = LI7810Config(id="licor-1", url="mqtt://127.0.0.1:1883")
    got = []
    for f in files:
        data = read_data_file(f)
        assert data.problems == [] and data.header["Model"] == "LI-7810" and data.header["Timezone"] == "Asia/Shanghai"
        rs, problems = readings(data, config)
        assert problems == []
        got += rs
    ledger = sim.ledger
    assert len(got) == len(ledger) == 240
    assert [r.time for r in got] == [e.time for e in ledger]
    assert got[0].time == datetime(2026, 3, 1, 23, 58, 1, tzinfo=UTC) and got[-1].time - got[0].time == timedelta(
        seconds=239)
    for r, e in zip(got, ledger, strict=True):
        assert r.values["co2_dry"] == pytest.approx(e.values["CO2"], abs=1e-5)
        assert r.values["ch4_dry"] == pytest.approx(e.values["CH4"], abs=1e-4)
