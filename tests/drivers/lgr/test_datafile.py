"""The LGR data-file reader: read by the file's own header, stop at the PGP signature block."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime

import pytest
from test_ugga import HEADER_2014, R1, R2, R_BAD_FIT

from drivers.lgr.datafile import DataFileError, parse_datafile, read_datafiles

SIGNATURE = (
    "-----BEGIN PGP MESSAGE-----\n"
    "Version: 2.6.2\n\n"
    "hIwDY32hYGCE8MkBA/wOu7d45aUxF4Q0RKJprD3v5Z9K3YcjZ2s4n2t8q3m9b2c4\n"
    "1,2,3,4 looks, like, a, record, but, is, base64\n"
    "=WZg0\n"
    "-----END PGP MESSAGE-----\n"
)
IDENTITY = "VC:2f90039 BD:Jan 16 2014 SN:LGR-14-0061\n"


def test_the_reader_stops_at_the_pgp_block_and_keeps_it_as_the_signature(tmp_path):
    path = tmp_path / "gga_2021-10-04_f0000.txt"
    path.write_text(IDENTITY + HEADER_2014 + R1 + R_BAD_FIT + R2 + SIGNATURE)
    (f,) = read_datafiles(path)
    assert f.identity["SN"] == "LGR-14-0061"
    assert f.columns[0] == "Time" and f.columns[-1] == "MIU_DESC" and len(f.columns) == 24
    assert len(f.readings) == 3 and len(f.valid) == 2 and f.problems == []
    assert f.readings[-1].time == datetime(2021, 10, 4, 11, 58, 40, 930000, tzinfo=UTC)
    assert f.signature is not None and f.signature.startswith("-----BEGIN PGP MESSAGE-----")
    assert f.signature.rstrip().endswith("-----END PGP MESSAGE-----")


def test_a_cut_last_record_is_named_and_the_others_kept():
    f = parse_datafile(IDENTITY + HEADER_2014 + R1 + R2[:90] + "\n" + SIGNATURE, "cut.txt")
    assert len(f.readings) == 1
    assert len(f.problems) == 1 and "cut.txt: line 4: malformed record skipped" in f.problems[0]


def test_zip_archives_are_read_member_by_member(tmp_path):
    path = tmp_path / "gga_2021-10-04.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("gga_2021-10-04_f0001.txt", IDENTITY + HEADER_2014 + R2 + SIGNATURE)
        z.writestr("gga_2021-10-04_f0000.txt", IDENTITY + HEADER_2014 + R1 + SIGNATURE)
        z.writestr("readme.pdf", b"%PDF")
    files = read_datafiles(path, date_order="mdy", timezone="UTC")
    assert [f.name for f in files] == ["gga_2021-10-04.zip:gga_2021-10-04_f0000.txt",
                                       "gga_2021-10-04.zip:gga_2021-10-04_f0001.txt"]
    assert [len(f.readings) for f in files] == [1, 1]


@pytest.mark.parametrize(("text", "message"), [
    (IDENTITY + R1, "a record before any header line"),
    (IDENTITY, "no header line"),
    (IDENTITY + "Time, [CO2]d_ppm\n" + R1, "no Fit_Flag"),
])
def test_files_that_cannot_be_read_say_why(text, message):
    with pytest.raises(DataFileError, match=message):
        parse_datafile(text, "bad.txt")
