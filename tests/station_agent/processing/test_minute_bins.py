from datetime import UTC, datetime, timedelta

from drivers.reading import Reading
from station_agent.processing.minute_bins import MinuteAssembler

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)


def r(seconds: float, device="a", stream="inlet:ambient", co2=420.0) -> Reading:
    return Reading(T0 + timedelta(seconds=seconds), device, {"co2": co2}, stream=stream)


def test_a_minute_closes_when_a_reading_of_a_later_minute_arrives():
    asm = MinuteAssembler(close_after_s=20)
    assert asm.add([r(s) for s in range(0, 60, 2)], ) == []
    closed = asm.add([r(61)], )
    assert len(closed) == 1
    assert closed[0].minute == T0 and len(closed[0].readings) == 30
    assert asm.pending() == 1


def test_devices_close_independently():
    asm = MinuteAssembler(close_after_s=20)
    asm.add([r(10, "a"), r(10, "b")], )
    closed = asm.add([r(70, "a")], )
    assert [(b.device, b.minute) for b in closed] == [("a", T0)]


def test_a_switch_inside_a_minute_gives_one_bin_per_stream():
    asm = MinuteAssembler(close_after_s=20)
    asm.add([r(5, stream="inlet:top"), r(35, stream="cal:A")], )
    closed = asm.add([r(65, stream="cal:A")], )
    assert sorted(b.stream for b in closed) == ["cal:A", "inlet:top"]


def test_a_quiet_device_closes_once_its_buffer_was_drained_past_the_minute():
    asm = MinuteAssembler(close_after_s=20)
    asm.add([r(30)])
    assert asm.drained("a", T0 + timedelta(seconds=79)) == []  # 79 s < 60 + 20
    assert len(asm.drained("a", T0 + timedelta(seconds=81))) == 1
    assert asm.drained("b", T0 + timedelta(hours=1)) == []  # another device's buffer says nothing


def test_without_a_drained_buffer_a_minute_stays_open():
    asm = MinuteAssembler(close_after_s=20)
    asm.add([r(30)])
    assert asm.pending() == 1


def test_readings_for_an_already_closed_minute_are_counted_late_not_binned():
    asm = MinuteAssembler(close_after_s=20)
    asm.add([r(30)], )
    asm.add([r(90)], )
    assert asm.add([r(31)], ) == []
    assert asm.late_readings == 1


def test_restored_closed_marker_skips_stored_minutes():
    asm = MinuteAssembler(close_after_s=20)
    asm.mark_closed_until("a", T0 + timedelta(minutes=1))
    asm.add([r(30), r(70)], )
    assert asm.late_readings == 1 and asm.pending() == 1
