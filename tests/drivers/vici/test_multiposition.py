"""Expected-communication tests of the VICI multiposition driver: the exact bytes, no hardware."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from drivers.base import DriverError
from drivers.registry import load_driver
from drivers.testing import ProtocolMismatch, ScriptedTransport, expected_protocol
from drivers.transport import TransportError, TransportTimeout
from drivers.vici.multiposition import ViciMultiposition


def config(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "valve1",
        "driver": "vici.multiposition",
        "url": "loop://",
        "positions": 10,
    }
    base.update(overrides)
    return base


VERSION_REPLY = b"Jan 07 2020\r10:41:02\rUA_MAIN_EQ\r"


# --- moves and read-back --------------------------------------------------------------------------


def test_move_is_go_without_reply_then_cp_read_back():
    with expected_protocol(
        ViciMultiposition, config(), [(b"GO5\r", None), (b"CP\r", b"CP05\r")]
    ) as valve:
        assert valve.goto(5) is None
        assert valve.position() == 5


def test_two_digit_positions():
    with expected_protocol(
        ViciMultiposition, config(positions=16), [(b"GO12\r", None), (b"CP\r", b"CP12\r")]
    ) as valve:
        valve.goto(12)
        assert valve.position() == 12


def test_cp_without_leading_zero_is_read():
    with expected_protocol(ViciMultiposition, config(), [(b"CP\r", b"CP7\r")]) as valve:
        assert valve.position() == 7


def test_move_with_id_prefix_on_a_multidrop_line():
    with expected_protocol(
        ViciMultiposition,
        config(device_id_prefix="1"),
        [(b"1GO5\r", None), (b"1CP\r", b"1CP05\r")],
    ) as valve:
        valve.goto(5)
        assert valve.position() == 5


def test_letter_id_prefix():
    with expected_protocol(
        ViciMultiposition, config(device_id_prefix="B"), [(b"BCP\r", b"BCP03\r")]
    ) as valve:
        assert valve.position() == 3


def test_legacy_replies_send_lg1_on_open_and_read_position_is():
    with expected_protocol(
        ViciMultiposition,
        config(legacy_replies=True),
        [(b"LG1\r", None), (b"GO5\r", None), (b"CP\r", b"Position is = 5\r")],
    ) as valve:
        valve.goto(5)
        assert valve.position() == 5


def test_legacy_replies_with_id_prefix():
    with expected_protocol(
        ViciMultiposition,
        config(legacy_replies=True, device_id_prefix="3"),
        [(b"3LG1\r", None), (b"3GO10\r", None), (b"3CP\r", b"3Position is = 10\r")],
    ) as valve:
        valve.goto(10)
        assert valve.position() == 10


def test_legacy_reply_is_understood_without_the_legacy_setting():
    """Actuator generations differ in their LG default: both formats are read either way."""
    with expected_protocol(
        ViciMultiposition, config(), [(b"CP\r", b"Position is = 4\r"), (b"CP\r", b"CP = 4\r")]
    ) as valve:
        assert valve.position() == 4
        assert valve.position() == 4


def test_home_and_park():
    with expected_protocol(
        ViciMultiposition, config(safe_position=8), [(b"HM\r", None), (b"GO8\r", None)]
    ) as valve:
        valve.home()
        valve.park()


@pytest.mark.parametrize("bad", [0, 11, -1])
def test_goto_outside_the_valve_sends_nothing(bad):
    with expected_protocol(ViciMultiposition, config(), []) as valve:
        with pytest.raises(ValueError, match=f"position {bad} is outside 1..10"):
            valve.goto(bad)


@pytest.mark.parametrize("bad", [True, "5", 5.0])
def test_goto_needs_an_int(bad):
    with expected_protocol(ViciMultiposition, config(), []) as valve:
        with pytest.raises(TypeError):
            valve.goto(bad)


# --- garbled replies and silence ------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [b"CP?5\r", b"Position is 5\r", b"XX05\r", b"\r", b"CP05 CP06\r", b"NP10\r"],
)
def test_garbled_cp_reply_names_the_raw_reply(reply):
    with expected_protocol(ViciMultiposition, config(), [(b"CP\r", reply)]) as valve:
        with pytest.raises(DriverError) as err:
            valve.position()
    assert repr(reply) in str(err.value)


def test_non_ascii_reply_is_a_driver_error():
    with expected_protocol(ViciMultiposition, config(), [(b"CP\r", b"CP\xff5\r")]) as valve:
        with pytest.raises(DriverError, match="not ASCII"):
            valve.position()


def test_reply_from_another_id_is_refused():
    with expected_protocol(
        ViciMultiposition, config(device_id_prefix="1"), [(b"1CP\r", b"2CP05\r")]
    ) as valve:
        with pytest.raises(DriverError, match="does not start with the ID '1'"):
            valve.position()


def test_position_outside_the_valve_is_a_driver_error():
    with expected_protocol(ViciMultiposition, config(), [(b"CP\r", b"CP12\r")]) as valve:
        with pytest.raises(DriverError, match=r"position 12 is outside 1\.\.10"):
            valve.position()


def test_two_position_reply_says_the_mode_is_wrong():
    with expected_protocol(
        ViciMultiposition, config(), [(b"CP\r", b"CPA\r"), (b"CP\r", b'Position is = "B"\r')]
    ) as valve:
        with pytest.raises(DriverError, match="AM3"):
            valve.position()
        with pytest.raises(DriverError, match="AM3"):
            valve.position()


def test_refused_command_is_a_driver_error():
    with expected_protocol(
        ViciMultiposition, config(device_id_prefix="0"), [(b"0NP\r", b"0E2 NP Invalid\r")]
    ) as valve:
        with pytest.raises(DriverError, match="refused NP"):
            valve.positions()


def test_silent_valve_times_out():
    with expected_protocol(ViciMultiposition, config(), [(b"CP\r", None)]) as valve:
        with pytest.raises(TransportTimeout):
            valve.position()


def test_cut_reply_times_out_with_what_arrived():
    with expected_protocol(ViciMultiposition, config(), [(b"CP\r", b"CP0")]) as valve:
        with pytest.raises(TransportTimeout) as err:
            valve.position()
    assert err.value.partial == b"CP0"


def test_dropped_link_is_a_transport_error_not_a_timeout():
    with expected_protocol(
        ViciMultiposition, config(), [(b"CP\r", ScriptedTransport.DISCONNECT)]
    ) as valve:
        with pytest.raises(TransportError) as err:
            valve.position()
    assert not isinstance(err.value, TransportTimeout)


def test_stale_reply_is_discarded_before_a_query():
    """A late line (e.g. from an action command under IFM1) must not be taken for CP's answer."""
    transport = ScriptedTransport([(b"GO5\r", b"GO5 done\r"), (b"CP\r", b"CP05\r")])
    valve = ViciMultiposition(ViciMultiposition.Config.model_validate(config()), transport)
    valve.open()
    valve.goto(5)
    assert valve.position() == 5
    assert transport.unused == []


# --- NP, ID, VR, identify -------------------------------------------------------------------------


def test_positions_modern_and_legacy():
    with expected_protocol(
        ViciMultiposition, config(), [(b"NP\r", b"NP10\r"), (b"NP\r", b"NP = 16\r")]
    ) as valve:
        assert valve.positions() == 10
        assert valve.positions() == 16


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(b"ID*\r", None), (b"ID = not used\r", None), (b"ID7\r", "7"), (b"ID = 7\r", "7")],
)
def test_valve_id(reply, expected):
    with expected_protocol(ViciMultiposition, config(), [(b"ID\r", reply)]) as valve:
        assert valve.valve_id() == expected


def test_identify_reads_id_np_and_the_firmware_lines():
    with expected_protocol(
        ViciMultiposition,
        config(),
        [(b"ID\r", b"ID*\r"), (b"NP\r", b"NP10\r"), (b"VR\r", VERSION_REPLY)],
    ) as valve:
        info = valve.identify()
    assert info["device"] == "valve1"
    assert info["driver"] == "vici.multiposition"
    assert info["valve_id"] is None
    assert info["positions"] == 10
    assert info["firmware"] == ["Jan 07 2020", "10:41:02", "UA_MAIN_EQ"]
    assert info["safe_position"] == 1


def test_identify_with_id_prefix_strips_it_from_every_line():
    with expected_protocol(
        ViciMultiposition,
        config(device_id_prefix="1", positions=16, legacy_replies=True),
        [
            (b"1LG1\r", None),
            (b"1ID\r", b"1ID = 1\r"),
            (b"1NP\r", b"1NP = 16\r"),
            (b"1VR\r", b"1Jan 07 2020\r110:41:02\r1UA_MAIN_EQ\r"),
        ],
    ) as valve:
        info = valve.identify()
    assert info["valve_id"] == "1"
    assert info["firmware"] == ["Jan 07 2020", "10:41:02", "UA_MAIN_EQ"]


def test_identify_refuses_a_valve_with_another_number_of_positions():
    with expected_protocol(
        ViciMultiposition, config(), [(b"ID\r", b"ID*\r"), (b"NP\r", b"NP06\r")]
    ) as valve:
        with pytest.raises(DriverError, match="indexes 6 positions.*configuration says 10"):
            valve.identify()


def test_identify_refuses_an_actuator_with_another_id():
    with expected_protocol(
        ViciMultiposition, config(device_id_prefix="1"), [(b"1ID\r", b"1ID2\r")]
    ) as valve:
        with pytest.raises(DriverError, match="reports ID '2'"):
            valve.identify()


def test_identify_without_any_version_reply_times_out():
    with expected_protocol(
        ViciMultiposition,
        config(),
        [(b"ID\r", b"ID*\r"), (b"NP\r", b"NP10\r"), (b"VR\r", None)],
    ) as valve:
        with pytest.raises(TransportTimeout):
            valve.identify()


def test_wrong_bytes_fail_the_script():
    """The harness itself: a driver writing other bytes than the script is caught at once."""
    with pytest.raises(ProtocolMismatch, match="expected b'GO05"):
        with expected_protocol(ViciMultiposition, config(), [(b"GO05\r", None)]) as valve:
            valve.goto(5)


# --- configuration and registry -------------------------------------------------------------------


def test_config_defaults():
    cfg = ViciMultiposition.Config.model_validate(config())
    assert cfg.baudrate == 9600
    assert cfg.device_id_prefix is None
    assert cfg.legacy_replies is False
    assert cfg.safe_position == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"safe_position": 11}, "safe_position"),
        ({"device_id_prefix": "a"}, "device_id_prefix"),
        ({"device_id_prefix": "12"}, "device_id_prefix"),
        ({"positions": 1}, "positions"),
        ({"driver": "picarro.g2401"}, "driver"),
        ({"legacy": True}, "legacy"),
    ],
)
def test_config_errors(overrides, field):
    with pytest.raises(ValidationError) as err:
        ViciMultiposition.Config.model_validate(config(**overrides))
    assert field in str(err.value)


def test_config_needs_the_number_of_positions():
    data = config()
    del data["positions"]
    with pytest.raises(ValidationError, match="positions"):
        ViciMultiposition.Config.model_validate(data)


def test_registered_under_its_name():
    cls = load_driver("vici.multiposition")
    assert cls is ViciMultiposition
    assert cls.kind == "valve"
    assert cls.simulator == "simulators.vici.multiposition:ViciValveSimulator"
