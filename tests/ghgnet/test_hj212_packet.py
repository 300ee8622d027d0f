"""HJ 212 data segments: parsing, building, flags, split/merge, replies, codes and unit conversion."""

from dataclasses import replace
from datetime import datetime

import pytest

from ghgnet.hj212 import (
    Packet,
    PacketError,
    codes,
    decode_packet,
    encode_packet,
    make_flag,
    merge_parts,
    parse_segment,
    reply_9011,
    reply_9012,
    reply_9013,
    reply_9014,
    segment_size,
    split_packet,
)

STANDARD_SEGMENT = ("QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;"
                    "CP=&&RtdInterval=30&&")
MINUTE_SEGMENT = ("QN=20260301080100123;ST=22;CN=2051;PW=123456;MN=GHG0000000000000000001;Flag=5;"
                  "CP=&&DataTime=20260301080000;a05001-Avg=812.123,a05001-Min=810.5,a05001-Max=814.0,"
                  "a05001-Flag=N;a05002-Avg=1402000.0,a05002-Flag=M&&")


def test_parse_the_standards_example():
    p = parse_segment(STANDARD_SEGMENT)
    assert (p.qn, p.st, p.cn, p.pw, p.mn, p.flag) == ("20160801085857223", "32", "1062", "100000",
                                                      "010000A8900016F000169DC0", 5)
    assert p.cp == ({"RtdInterval": "30"},)
    assert p.ack_wanted and not p.is_split and p.version == 1 and p.edition == "2017"
    assert p.segment() == STANDARD_SEGMENT


def test_minute_packet_groups_and_factors():
    p = parse_segment(MINUTE_SEGMENT)
    assert p.cp[0] == {"DataTime": "20260301080000"}
    assert p.data_time == datetime(2026, 3, 1, 8, 0)
    assert p.factors() == {"a05001": {"Avg": "812.123", "Min": "810.5", "Max": "814.0", "Flag": "N"},
                           "a05002": {"Avg": "1402000.0", "Flag": "M"}}
    assert p.segment() == MINUTE_SEGMENT
    assert decode_packet(encode_packet(p)) == p


def test_older_loggers_without_qn_and_flag_parse_and_ask_no_answer():
    p = parse_segment("ST=32;CN=2011;PW=123456;MN=0873HHMZWSLH02;CP=&&DataTime=20160103133030;"
                      "060-Rtd=3.0943,060-Flag=N&&")
    assert p.qn is None and p.flag is None and not p.ack_wanted and p.version is None


def test_a_trailing_empty_group_is_tolerated():
    p = parse_segment("ST=32;CN=2011;PW=1;MN=A;CP=&&LA=30;TE=25;&&")
    assert p.cp == ({"LA": "30"}, {"TE": "25"})


@pytest.mark.parametrize("segment,words", [
    ("ST=32;QN=20160801085857223;CN=1062;PW=1;MN=A;CP=&&&&", "out of order"),
    ("QN=20160801085857223;ST=32;CN=1062;PW=1;MN=A;CP=&&", "end in &&"),
    ("QN=20160801085857223;ST=32;CN=1062;PW=1;MN=A;CP=&&x=1", "end in &&"),
    ("QN=20160801085857223;ST=32;PW=1;MN=A;CP=&&&&", "CN missing"),
    ("QN=20160801085857223;ST=32;CN=1062;PW=1;MN=A;Foo=1;CP=&&&&", "unknown header field"),
    ("QN=20160801085857223;ST=32;ST=32;CN=1062;PW=1;MN=A;CP=&&&&", "twice"),
    ("QN=2016;ST=32;CN=1062;PW=1;MN=A;CP=&&&&", "QN="),
    ("ST=3x;CN=1062;PW=1;MN=A;CP=&&&&", "ST="),
    ("ST=32;CN=106;PW=1;MN=A;CP=&&&&", "CN="),
    ("ST=32;CN=1062;PW=1;MN=A;Flag=x;CP=&&&&", "Flag="),
    ("ST=32;CN=1062;PW=1;MN=A;Flag=5;PNUM=2;PNO=1;CP=&&&&", "split bit"),
    ("ST=32;CN=1062;PW=1;MN=A;Flag=7;PNUM=2;PNO=3;CP=&&&&", "PNO"),
    ("ST=32;CN=1062;PW=1;MN=A;CP=&&a=1;;b=2&&", "empty"),
    ("ST=32;CN=1062;PW=1;MN=A;CP=&&a=1,a=2&&", "twice"),
    ("ST=32;CN=1062;PW=1;MN=A;CP=&&a&&", "no '='"),
    ("ST=32;CN=1062;PW=1;MN=A;CP=&&a=1&b&&", "contains '&'"),
    ("ST=32;CN=1062;PW=1;MN=;CP=&&&&", "MN="),
    ("no cp at all", "no CP"),
])
def test_parse_errors_name_what_is_wrong(segment, words):
    with pytest.raises(PacketError, match=words):
        parse_segment(segment)


def test_bad_data_time_is_refused_by_name():
    p = parse_segment("ST=32;CN=2051;PW=1;MN=A;CP=&&DataTime=20261301000000&&")
    with pytest.raises(PacketError, match="DataTime"):
        _ = p.data_time


def test_flag_values_per_edition():
    assert make_flag("2017") == 4 and make_flag("2017", ack=True) == 5
    assert make_flag("2017", ack=True, split=True) == 7
    assert make_flag("2025", ack=True) == 9  # caoyiliang/HJ212: HJT212_2025 = 8, plus A
    with pytest.raises(ValueError, match="edition"):
        make_flag("2005")


def test_reply_9014_echoes_qn_with_st_91_and_flag_4():
    req = parse_segment(MINUTE_SEGMENT)
    ack = reply_9014(req)
    assert ack.segment() == ("QN=20260301080100123;ST=91;CN=9014;PW=123456;MN=GHG0000000000000000001;"
                             "Flag=4;CP=&&&&")
    assert not ack.ack_wanted


def test_other_replies():
    req = parse_segment(STANDARD_SEGMENT)
    assert reply_9011(req, 1).cp == ({"QnRtn": "1"},) and reply_9011(req).cn == "9011"
    assert reply_9012(req, codes.EXERTN_NO_DATA).segment().endswith("CN=9012;PW=100000;"
                                                                   "MN=010000A8900016F000169DC0;Flag=4;"
                                                                   "CP=&&ExeRtn=100&&")
    assert reply_9013(req).cn == "9013" and reply_9013(req).cp == ()
    assert reply_9014(replace(req, flag=make_flag("2025", ack=True))).flag == 8


def _big_packet(n_factors: int) -> Packet:
    groups = [{"DataTime": "20260301080000"}]
    for i in range(n_factors):
        code = f"a{i:05d}"
        groups.append({f"{code}-Avg": f"{i}.123456", f"{code}-Min": "1.0", f"{code}-Max": "2.0",
                       f"{code}-Flag": "N"})
    return Packet(qn="20260301080100123", st="22", cn="2051", pw="123456", mn="GHG01", flag=5, cp=groups)


def test_split_keeps_parts_within_the_limit_and_merges_back():
    whole = _big_packet(60)
    assert segment_size(whole) > 1024
    parts = split_packet(whole)
    assert len(parts) > 1
    for i, part in enumerate(parts, 1):
        assert segment_size(part) <= 1024
        assert part.flag == 7 and part.pnum == len(parts) and part.pno == i
        assert part.cp[0] == {"DataTime": "20260301080000"}  # every part is a data packet on its own
        assert all(len(g) in (1, 4) for g in part.cp)          # no factor group cut
        assert decode_packet(encode_packet(part)) == part
    assert merge_parts(reversed(parts)) == whole


def test_split_with_a_small_limit_and_the_unsplit_case():
    whole = _big_packet(5)
    assert split_packet(whole) == [whole]
    parts = split_packet(whole, limit=200)
    assert len(parts) == 5 and merge_parts(parts) == whole
    with pytest.raises(ValueError, match="limit"):
        split_packet(whole, limit=120)


def test_merge_refuses_incomplete_or_mixed_sets():
    parts = split_packet(_big_packet(60))
    with pytest.raises(ValueError, match="do not make"):
        merge_parts(parts[1:])
    other = replace(parts[1], qn="20260301080100999")
    with pytest.raises(ValueError, match="another packet"):
        merge_parts([parts[0], other, *parts[2:]])


def test_packet_validates_values_it_is_built_with():
    with pytest.raises(PacketError, match="a value may not contain"):
        Packet(st="22", cn="2051", pw="1", mn="A", cp=[{"a-Rtd": "1;2"}])
    with pytest.raises(PacketError, match="PNUM and PNO"):
        Packet(st="22", cn="2051", pw="1", mn="A", flag=7, pnum=2)


# --- codes -----------------------------------------------------------------------------------------

def test_ppm_to_mg_m3_at_standard_conditions():
    # 400 ppm CO2: 400 x 44.01 / 22.414 = 785.4 mg/m3.
    assert codes.ppm_to_mg_m3(400, 44.01) == pytest.approx(785.402, abs=1e-3)
    assert codes.mg_m3_to_ppm(codes.ppm_to_mg_m3(412.3, 44.01), 44.01) == pytest.approx(412.3)


def test_wire_units_round_trip_and_match_the_factor_table():
    assert codes.FACTORS["a05001"] == codes.Factor("a05001", "co2", "mg/m3")
    assert codes.to_wire_value(400.0, "co2", "mg/m3") == pytest.approx(785.402, abs=1e-3)
    # CH4 2000 ppb = 2 ppm x 16.04 / 22.414 = 1.4312 mg/m3 = 1.4312e6 ng/m3.
    assert codes.to_wire_value(2000.0, "ch4", "ng/m3") == pytest.approx(1.4312e6, rel=1e-4)
    for unit in ("mg/m3", "ug/m3", "ng/m3", "ppm", "ppb"):
        assert codes.from_wire_value(codes.to_wire_value(1987.6, "ch4", unit), "ch4", unit) == pytest.approx(1987.6)
    with pytest.raises(ValueError, match="unit"):
        codes.to_wire_value(1.0, "co2", "kg")


def test_icos_to_hj212_flags():
    assert codes.hj212_flag("U", ["spike"]) == "N"
    assert codes.hj212_flag("O") == "N"
    assert codes.hj212_flag("N", ["maintenance", "status"]) == "M"
    assert codes.hj212_flag("N", ["status"]) == "D"
    assert codes.hj212_flag("N", ["out_of_range"]) == "T"
    assert codes.hj212_flag("N", ["no_data"]) == "B"
    assert codes.hj212_flag("K", []) == "D"
    assert codes.hj212_flag("N", ["flush"]) == "C"
    assert codes.hj212_flag("N", ["status"], table={"status": "B"}) == "B"


def test_hj212_to_icos_flags():
    assert codes.icos_flag("N") == ("U", ())
    assert codes.icos_flag("M") == ("N", ("maintenance",))
    assert codes.icos_flag("T") == ("N", ("out_of_range",))
    assert codes.icos_flag("Z") == ("N", ("hj212_flag_Z",))
    assert set(codes.HJ_TO_ICOS) == set(codes.DATA_FLAGS)


def test_fast_parse_agrees_with_the_field_by_field_parser_on_mutated_segments():
    """parse_segment's fast path must accept exactly what the checked path accepts, with the same result."""
    import random

    from ghgnet.hj212.packet import _parse_fast, _parse_slow

    rng = random.Random(212)
    bases = [
        "QN=20160801085857223;ST=32;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
        "CP=&&DataTime=20160801084000;a05001-Avg=409.123,a05001-Flag=N;a05002-Avg=1.3,a05002-Flag=N&&",
        "ST=32;CN=2011;PW=1;MN=A;CP=&&DataTime=20160801084000;w01018-Rtd=1,w01018-Flag=N;&&",
        "QN=20160801085857223;ST=91;CN=9014;PW=123456;MN=AB-C_1;Flag=7;PNUM=3;PNO=2;CP=&&&&",
    ]
    alphabet = "=;,&-_ \r\n\u4e2d0123456789AZaz"
    checked = 0
    for _ in range(4000):
        text = rng.choice(bases)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(text) + 1)
            op = rng.random()
            if op < 0.4:
                text = text[:i] + rng.choice(alphabet) + text[i:]
            elif op < 0.8:
                text = text[:i] + text[i + 1:]
            else:
                text = text[:i] + rng.choice(alphabet) + text[i + 1:]
        fast = _parse_fast(text)
        try:
            slow = _parse_slow(text)
        except PacketError:
            assert fast is None, text
            continue
        if fast is not None:
            checked += 1
            assert fast == slow, text
    assert checked > 100
