"""The station PC's clock synchronisation read from chrony / systemd-timesyncd outputs (the layouts
of chronyc(1) `tracking` and `timedatectl timesync-status`), and "unknown" said honestly."""

from __future__ import annotations

from pathlib import Path

import pytest

from station_agent.service.clock_sync import (
    parse_chronyc_tracking,
    parse_timesync_status,
    read_clock_sync,
    run_tool,
)

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "clock_sync"


def test_chrony_slow_is_a_negative_offset():
    s = parse_chronyc_tracking((FIX / "chronyc_tracking.txt").read_text())
    assert (s.source, s.synchronised, s.stratum) == ("chrony", True, 3)
    assert s.offset_s == pytest.approx(-6.523e-6)
    assert s.reference == "CB00710F (ntp1.example.net)" and s.last_sync == "Fri Jan 27 09:49:17 2017"


def test_chrony_not_synchronised_and_fast():
    s = parse_chronyc_tracking((FIX / "chronyc_tracking_unsynced.txt").read_text())
    assert s.synchronised is False and s.offset_s == pytest.approx(2.5)


def test_timesyncd_offset_in_its_units():
    s = parse_timesync_status((FIX / "timesync_status.txt").read_text())
    assert (s.source, s.synchronised, s.stratum) == ("timesyncd", True, 2)
    assert s.offset_s == pytest.approx(-1.129e-3)
    assert s.reference == "192.168.1.1 (ntp.example.net)"


def test_garbage_is_unknown_not_synchronised():
    assert parse_chronyc_tracking("506 Cannot talk to daemon\n").source == "unknown"
    assert parse_timesync_status("Failed to connect to bus\n").synchronised is None


def test_chrony_first_then_timesyncd_then_unknown():
    outputs = {"timedatectl": (FIX / "timesync_status.txt").read_text()}
    assert read_clock_sync(lambda argv: outputs.get(argv[0])).source == "timesyncd"
    got = read_clock_sync(lambda argv: None)
    assert got.source == "unknown" and got.synchronised is None and "neither" in got.detail


def test_this_machine_answers_or_says_unknown():
    """On a container without chronyd or systemd both tools fail: the reader says unknown, never guesses."""
    s = read_clock_sync(run_tool)
    assert s.source in ("chrony", "timesyncd", "unknown")
    if s.source == "unknown":
        assert s.synchronised is None and s.offset_s is None and s.detail
