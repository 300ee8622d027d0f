"""The station agent's progress probes for the watchdog (ghgnet/watchdog.py, shared with central):
acquisition, storage and forwarding, and what counts as progress for each."""

from __future__ import annotations

import time
from collections.abc import Callable

from ghgnet.watchdog import Probe, ProbeState, ProgressWatchdog, WatchdogStats

__all__ = ["Probe", "ProbeState", "ProgressWatchdog", "WatchdogStats", "forwarder_probe", "poller_probe",
           "writer_probe"]


# -- probes for the agent's parts (duck-typed: they read public attributes only) ----------------


def poller_probe(poller, max_stall_s: float) -> Probe:
    """Acquisition of one analyzer: its poller completes polls (`health.polls`) or receives
    readings. A poll stuck inside the driver, or a dead poller thread, is a stall. An analyzer
    that is unreachable (not connected: the poller is reconnecting with backoff) is idle: that
    is a fault event and an alarm, and restarting the agent would not bring it back.
    """
    h = poller.health
    return Probe(
        name=f"acquisition:{poller.driver.device_id}",
        mark=lambda: (h.readings, h.polls),
        max_stall_s=max_stall_s,
        idle=lambda: not h.connected,
        alive=poller.thread.is_alive,
    )


def writer_probe(writer, max_stall_s: float) -> Probe:
    """Storage: the writer stores rows (raw, minutes, events, acks), or has nothing queued."""
    st = writer.stats
    return Probe(
        name="storage",
        mark=lambda: (st.raw, st.minutes, st.events, st.acked),
        max_stall_s=max_stall_s,
        idle=lambda: writer.queue.qsize() == 0,
        alive=writer.thread.is_alive,
    )


def forwarder_probe(forwarder, backlog: Callable[[], int], max_stall_s: float) -> Probe:
    """Forwarding: records published, resent, denied or acked by central. Idle when the outbox
    is empty (`backlog()` == 0) or the broker is down (not connected): a station without network
    keeps its data and must not be restarted in a loop. Real time: the forwarder's ack timeout
    (60 s) and denied-publish backoff (up to 600 s) are real seconds, so allow more than both.
    """
    st = forwarder.stats
    return Probe(
        name="forwarding",
        mark=lambda: (st["published_messages"], st["acked"], st["resent"], st["denied"]),
        max_stall_s=max_stall_s,
        idle=lambda: not forwarder.connected or backlog() == 0,
        alive=forwarder.thread.is_alive,
        timebase=time.monotonic,
    )
