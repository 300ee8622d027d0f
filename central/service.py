"""Central's processes as systemd services: readiness (sd_notify) and a watchdog fed only on
progress (ghgnet/sdnotify.py and ghgnet/watchdog.py, shared with the station agent).

What counts as progress:
- receiver ingest: messages handled or storage retries (a database outage is retried, not
  restarted: a restart cannot bring the database back); idle while nothing is queued; a dead
  decode or storage thread is a stall at once.
- aggregation and alarms: a pass done (or failed and logged) within their allowance.
- the web server: it answers a GET of its own URL (`http_probe`).
Allowances are real seconds (the receiver's threads wait in real time whatever central's clock).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

import structlog

from ghgnet.clock import make_clock
from ghgnet.sdnotify import SdNotifier
from ghgnet.watchdog import Probe, ProgressWatchdog

INGEST_STALL_S = 120.0


def receiver_probes(receiver: Any) -> list[Probe]:
    """The probes of a started `Receiver`: ingest, and its aggregation and alarm threads if running."""
    cfg = receiver.config
    probes = [Probe(
        name="ingest",
        mark=lambda: (receiver.stats["messages_handled"], receiver.stats["store_retries"]),
        max_stall_s=INGEST_STALL_S,
        idle=lambda: receiver.queue_depth == 0 and receiver.decoded_depth == 0,
        alive=receiver.ingest_alive,
        timebase=time.monotonic,
    )]
    agg = receiver.aggregator
    if agg is not None:
        probes.append(Probe(name="aggregation", mark=lambda: (agg.passes, agg.errors),
                            max_stall_s=max(300.0, 10 * cfg.aggregate.interval_s), alive=agg.alive,
                            timebase=time.monotonic))
    alarms = receiver.alarms
    if alarms is not None:
        probes.append(Probe(name="alarms", mark=lambda: (alarms.evaluator.passes, alarms.errors),
                            max_stall_s=max(300.0, 3 * cfg.alarms.interval_s), alive=alarms.alive,
                            timebase=time.monotonic))
    return probes


def http_probe(url: str, max_stall_s: float = 60.0, timeout_s: float = 5.0) -> Probe:
    """Progress of a web server: each successful GET of `url` (any answer below 500) counts."""
    answered = [0]

    def mark() -> int:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:
                resp.read(1)
            answered[0] += 1
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                answered[0] += 1
        except (urllib.error.URLError, OSError):
            pass
        return answered[0]

    return Probe(name="http", mark=mark, max_stall_s=max_stall_s, timebase=time.monotonic)


class WebService:
    """A web server's readiness and watchdog (`central-receiver serve`): `stop()` on the way out."""

    def __init__(self, url: str, log: Any) -> None:
        self.notifier = SdNotifier(unset_environment=True)
        self.watchdog = ProgressWatchdog(self.notifier, make_clock(), [http_probe(url)], log, status_ok="serving")

    def start(self) -> WebService:
        self.watchdog.start()
        self.notifier.ready("serving")
        return self

    def stop(self) -> None:
        self.notifier.stopping("stopping")
        self.watchdog.stop()
        self.notifier.close()


def serve_as_service(url: str) -> WebService:
    """Tell systemd the web server at `url` is ready, and feed its watchdog while it answers."""
    return WebService(url, structlog.get_logger(component="web")).start()
