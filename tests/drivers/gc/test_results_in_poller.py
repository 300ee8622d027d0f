"""gc.results under the station's AnalyzerPoller: the stream comes from the file, not from the
valve's tagger, and at every open the driver is told the newest stored time (resume)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime

from test_results import GCWERKS, drop

from drivers.gc.results import GcResults, GcResultsConfig
from ghgnet.clock import ManualClock
from ghgnet.logs import get_logger
from station_agent.acquisition.poller import AnalyzerPoller


def test_the_file_names_the_stream_and_resume_gets_the_newest_stored_time(tmp_path):
    drop(tmp_path, "gc.C", GCWERKS)
    cfg = GcResultsConfig(id="gc-1", folder=tmp_path, layout="gcwerks", timezone="Asia/Shanghai",
                          streams={"std-1": "cal:std-1"})
    driver = GcResults(cfg, GcResults.make_transport(cfg))
    stored = datetime(2026, 3, 1, 8, 5, tzinfo=UTC)  # the store already holds the first injection
    asked: list[str] = []
    submitted: list = []

    def newest_stored(device: str) -> datetime:
        asked.append(device)
        return stored

    poller = AnalyzerPoller(
        driver, ManualClock(datetime(2026, 3, 1, 8, 30, tzinfo=UTC)), lambda r, d: submitted.extend(r),
        lambda: True, lambda e: None, lambda r, o, lo: replace(r, stream="inlet:valve-says"),
        get_logger(component="test"), threading.Event(), newest_stored=newest_stored)
    poller.poll_once()
    poller.poll_once()
    assert asked == ["gc-1"]
    assert [(r.time, r.stream) for r in submitted] == [(datetime(2026, 3, 1, 8, 10, tzinfo=UTC), "cal:std-1")]
