"""Campbell TOA5 and TOB1 files: read what a logger writes (a hand-written file), round-trip our
writers, FP2 decoding, and clear errors for broken files."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.campbell.fp2 import decode_fp2, encode_fp2
from drivers.campbell.toa5 import Toa5Error, read_toa5, write_toa5
from drivers.campbell.tob1 import Tob1Error, read_tob1, write_tob1
from drivers.rawtable import RawTable

LOGGER_FILE = (
    '"TOA5","FluxTower","CR3000","4321","CR3000.Std.32","CPU:flux.CR3","12345","ts_data"\r\n'
    '"TIMESTAMP","RECORD","Ux","Uy","Uz","Ts","CO2","H2O","diag_csat","agc"\r\n'
    '"TS","RN","m/s","m/s","m/s","C","mmol/m^3","mmol/m^3","",""\r\n'
    '"","","Smp","Smp","Smp","Smp","Smp","Smp","Smp","Smp"\r\n'
    '"2026-06-01 12:00:00",0,1.234,-0.5,0.12,21.5,16.9,560.1,0,50\r\n'
    '"2026-06-01 12:00:00.05",1,1.3,-0.45,"NAN",21.52,16.95,561,0,50\r\n'
    '"2026-06-01 12:00:00.1",2,1.28,-0.47,0.1,21.49,16.93,560.7,4096,56.25\r\n'
)


def test_read_a_logger_toa5_file(tmp_path):
    f = tmp_path / "TOA5_FluxTower.ts_data.dat"
    f.write_text(LOGGER_FILE)
    t = read_toa5(f)
    assert t.names == ["RECORD", "Ux", "Uy", "Uz", "Ts", "CO2", "H2O", "diag_csat", "agc"]
    assert t.units[1] == "m/s" and t.units[5] == "mmol/m^3"
    assert t.header["station_name"] == "FluxTower" and t.header["table_name"] == "ts_data"
    assert len(t) == 3
    assert str(t.time[1]) == "2026-06-01T12:00:00.050000000"
    assert np.isnan(t.column("Uz")[1])
    np.testing.assert_allclose(t.column("CO2"), [16.9, 16.95, 16.93])
    with pytest.raises(KeyError, match="no column 'co2'; the table has: RECORD, Ux"):
        t.column("co2")


def _table(n=200):
    rng = np.random.default_rng(0)
    time = np.datetime64("2026-06-01T12:00:00", "ns") + (np.arange(n) * 50_000_000).astype("timedelta64[ns]")
    cols = {"Ux": rng.normal(2, 1, n), "Uz": rng.normal(0, 0.3, n), "Ts": rng.normal(21, 0.5, n),
            "diag": np.zeros(n)}
    cols["Uz"][5] = np.nan
    return RawTable(list(cols), ["m/s", "m/s", "C", ""], cols, time)


def test_toa5_round_trip(tmp_path):
    t = _table()
    write_toa5(tmp_path / "x.dat", t, station_name="S1")
    back = read_toa5(tmp_path / "x.dat")
    assert back.names == t.names and back.units == t.units and back.header["station_name"] == "S1"
    np.testing.assert_array_equal(back.time, t.time)
    for name in t.names:
        np.testing.assert_allclose(back.column(name), t.columns[name], rtol=1e-6)
    first = (tmp_path / "x.dat").read_text().splitlines()
    assert first[0].startswith('"TOA5","S1"') and first[4].startswith('"2026-06-01 12:00:00.000",')


@pytest.mark.parametrize("content, message", [
    ('"TOB1","x"\n"a"\n"b"\n"c"\n', "line 1: starts with \\['TOB1'\\]"),
    ('"TOA5","x"\n', "1 lines, a TOA5 file has 4 header lines"),
    ('"TOA5","x"\n"TIMESTAMP","A"\n"TS","m"\n""\n', "1 processing"),
    ('"TOA5","x"\n"TIMESTAMP","A"\n"TS","m"\n"",""\n"2026-06-01 12:00:00",1,2\n', "line 5: 2 values"),
    ('"TOA5","x"\n"TIMESTAMP","A"\n"TS","m"\n"",""\n2026-06-01,1\n', "line 5: no quoted TIMESTAMP"),
])
def test_broken_toa5_files_are_named(tmp_path, content, message):
    f = tmp_path / "bad.dat"
    f.write_text(content)
    with pytest.raises(Toa5Error, match=message):
        read_toa5(f)


def test_fp2_bit_layout():
    # sign bit, 2-bit negative decimal exponent, 13-bit mantissa, most significant byte first
    words = np.frombuffer(bytes([0x25, 0x6B, 0xA5, 0x6B, 0x00, 0x00, 0x1F, 0xFF, 0x9F, 0xFF, 0x9F, 0xFE,
                                 0x7F, 0x3F]), dtype=">u2")
    got = decode_fp2(words)
    np.testing.assert_allclose(got[:2], [138.7, -138.7])
    assert got[2] == 0.0 and got[3] == np.inf and got[4] == -np.inf and np.isnan(got[5])
    assert got[6] == pytest.approx(7.999)  # 0x7F3F: exponent 3, mantissa 7999


def test_fp2_encoding_keeps_the_most_decimals_that_fit():
    v = np.array([1.2346, -12.346, 123.46, 1234.6, 7999.0, 9000.0, np.nan, 0.0004])
    back = decode_fp2(encode_fp2(v))
    np.testing.assert_allclose(back[:5], [1.235, -12.35, 123.5, 1235, 7999], atol=1e-9)
    assert back[5] == np.inf and np.isnan(back[6]) and back[7] == 0.0


def test_tob1_round_trip_with_fp2_and_ieee4(tmp_path):
    t = _table()
    write_tob1(tmp_path / "x.dat", t, {"Ux": "IEEE4", "Uz": "FP2", "Ts": "IEEE8", "diag": "ULONG"})
    back = read_tob1(tmp_path / "x.dat")
    assert back.names == t.names and back.header["types"] == "IEEE4,FP2,IEEE8,ULONG"
    np.testing.assert_array_equal(back.time, t.time)
    np.testing.assert_allclose(back.column("Ux"), t.columns["Ux"], rtol=1e-6)
    np.testing.assert_allclose(back.column("Ts"), t.columns["Ts"])
    np.testing.assert_allclose(back.column("Uz"), t.columns["Uz"], atol=5e-4)  # FP2: 3 decimals below 8
    assert np.isnan(back.column("Uz")[5])


def test_tob1_truncated_record_and_unknown_type_are_named(tmp_path):
    t = _table(10)
    write_tob1(tmp_path / "x.dat", t, {})
    blob = (tmp_path / "x.dat").read_bytes()
    (tmp_path / "cut.dat").write_bytes(blob[:-3])
    with pytest.raises(Tob1Error, match="not a whole number of 24-byte records"):
        read_tob1(tmp_path / "cut.dat")
    (tmp_path / "odd.dat").write_bytes(blob.replace(b'"IEEE4","IEEE4"', b'"IEEE4","NSEC"', 1))
    with pytest.raises(Tob1Error, match="data type 'NSEC'"):
        read_tob1(tmp_path / "odd.dat")
