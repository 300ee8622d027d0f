"""Instrument lines as an input surface: whatever an analyzer or a valve answers, a driver returns
what it could read or raises a typed error (DriverError, TransportError), never anything else, and
the good records around a bad line are all kept. Property-based, on the project's expected-protocol
kit (ScriptedTransport plays the device's replies byte for byte); the Modbus driver and a running
poller are fuzzed over real sockets in tests/drivers/test_wire_fuzz.py."""

from __future__ import annotations

import math
from datetime import UTC
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import DriverError, PollResult
from drivers.picarro.g2401 import _TIME_RE, G2401, MAX_EXTRA_LINES
from drivers.testing import ScriptedTransport
from drivers.transport import TransportError
from drivers.vici.multiposition import ViciMultiposition

FUZZ = settings(max_examples=300, deadline=None)
COLUMNS = ["CO2", "CO2_dry", "CH4", "CH4_dry", "CO", "H2O", "CavityPressure", "CavityTemp"]
PICARRO = G2401.Config.model_validate({"id": "picarro-1", "driver": "picarro.g2401", "url": "/dev/ttyUSB0",
                                       "columns": COLUMNS})
VALVE = ViciMultiposition.Config.model_validate({"id": "valve-1", "driver": "vici.multiposition",
                                                 "url": "/dev/ttyUSB1", "positions": 10})
STATUS = b"_Instr_GetStatus\r"
BUFFER = b"_Meas_GetBuffer\r"

TRICKY = [b"", b"ERR:3002", b"ERR:9999\ttime", b"ERR:", b"963", b"963;", b"-1", b"9" * 5000, b"1e3", b"nan",
          b"26/13/45 99:99:99.999;1;", b"26/02/30 12:00:00.000;" + b"1;" * 8, b"26/03/01 12:00:00.000",
          b"26/03/01 12:00:00.000;" + b"x;" * 8, b"26/03/01 12:00:00.000;" + b"1;" * 20,
          b"26/03/01 12:00:00.000;inf;" + b"1;" * 7, b"\x00\xff\xfe", "٣".encode(), b"3;", b"600;", b"CP05",
          b"Position is = 99", b"NP = 0", b"ID = \xff", b"E2 CP Invalid", b"0CP05"]
# Noise never holds the scripted transport's own directive (Hypothesis mines constants from the
# code it tests, and drew ScriptedTransport.DISCONNECT): that would be the harness dropping the link.
noise_line = (st.sampled_from(TRICKY) | st.binary(max_size=40).map(lambda b: b.replace(b"\r", b""))).filter(
    lambda b: ScriptedTransport.DISCONNECT not in b)
replies = (st.lists(noise_line, max_size=6).map(lambda lines: b"".join(x + b"\r" for x in lines))
           | st.binary(max_size=80).filter(lambda b: ScriptedTransport.DISCONNECT not in b))


def driver_on(cls: Any, config: Any, pairs: list[tuple[bytes | None, bytes | None]]) -> Any:
    transport = ScriptedTransport(pairs)
    driver = cls(config, transport)
    driver.open()
    return driver


def assert_sane(result: PollResult) -> None:
    for r in result.readings:
        assert r.time.tzinfo is not None and r.time.utcoffset().total_seconds() == 0
        assert all(math.isfinite(v) for v in r.values.values()) and r.device == "picarro-1"
    assert all(isinstance(p, str) and p for p in result.problems)


@FUZZ
@given(status=replies, buffer=replies)
def test_a_picarro_poll_of_any_reply_gives_records_or_a_typed_error(status, buffer):
    driver = driver_on(G2401, PICARRO, [(STATUS, status), (BUFFER, buffer)])
    try:
        result = driver.poll()
    except (DriverError, TransportError) as exc:
        assert str(exc)
        return
    assert_sane(result)


@FUZZ
@given(reply=replies)
def test_picarro_latest_and_status_of_any_reply_give_a_value_or_a_typed_error(reply):
    for call, command in ((lambda d: d.latest(), b"_Meas_GetConcEx\r"), (lambda d: d.read_status(), STATUS)):
        driver = driver_on(G2401, PICARRO, [(command, reply)])
        try:
            call(driver)
        except (DriverError, TransportError) as exc:
            assert str(exc)


values = st.lists(st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: f"{v:.4f}"), min_size=8, max_size=8)
stamps = st.tuples(st.integers(0, 68), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23),
                   st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
non_record = noise_line.filter(lambda b: not _TIME_RE.match(b.decode("ascii", "replace").strip("\r\n\x00 ")))


@st.composite
def buffer_replies(draw) -> tuple[bytes, list[list[str]], int]:
    """A `_Meas_GetBuffer` reply: valid records in order with noise lines between them, the count
    in front naming the records; (reply, the valid records' values, noise lines)."""
    records, lines, noise = [], [], 0
    for _ in range(draw(st.integers(0, 6))):
        for _ in range(draw(st.integers(0, 2))):
            if noise < MAX_EXTRA_LINES:
                lines.append(draw(non_record))
                noise += 1
        vals = draw(values)
        y, mo, d, h, mi, s, ms = draw(stamps)
        stamp = f"{y:02d}/{mo:02d}/{d:02d} {h:02d}:{mi:02d}:{s:02d}.{ms:03d}"
        records.append(vals)
        single = draw(st.booleans())
        text = stamp + ";" + "".join(v + ";" for v in vals) if single else "".join(f"{stamp};{v};" for v in vals)
        lines.append(text.encode())
    return f"{len(records)};\r".encode() + b"".join(x + b"\r" for x in lines), records, noise


@FUZZ
@given(reply=buffer_replies())
def test_noise_between_picarro_records_costs_no_record(reply):
    buffer, records, noise = reply
    driver = driver_on(G2401, PICARRO, [(STATUS, b"963\r"), (BUFFER, buffer)])
    result = driver.poll()
    assert_sane(result)
    assert len(result.readings) == len(records)
    for reading, vals in zip(result.readings, records):
        assert reading.values["co2"] == float(vals[0]) and reading.time.tzinfo == UTC
    assert len(result.problems) == noise


VALVE_CALLS = {b"CP\r": lambda v: v.position(), b"NP\r": lambda v: v.positions(), b"ID\r": lambda v: v.valve_id(),
               b"VR\r": lambda v: v.version()}


@FUZZ
@given(command=st.sampled_from(sorted(VALVE_CALLS)), reply=replies)
def test_a_valve_query_of_any_reply_gives_a_value_or_a_typed_error(command, reply):
    valve = driver_on(ViciMultiposition, VALVE, [(command, reply)])
    try:
        got = VALVE_CALLS[command](valve)
    except (DriverError, TransportError) as exc:
        assert str(exc)
        return
    if command == b"CP\r":
        assert 1 <= got <= 10
    elif command == b"NP\r":
        assert 0 <= got <= 99
    elif command == b"ID\r":
        assert got is None or (len(got) == 1 and got.isalnum())
    else:
        assert all(isinstance(line, str) for line in got)
