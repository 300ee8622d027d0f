"""The simulated WindMaster: its stream is the flux site's wind in the anemometer's line format,
paced by the injected clock, and the driver reads it back."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from drivers.gill.windmaster import parse_line
from ghgnet.clock import ManualClock
from simulators.flux_site import FluxSiteSpec, simulate_half_hour
from simulators.gill.windmaster import WindMasterStream

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_the_stream_carries_the_sites_wind_at_its_rate():
    clock = ManualClock(START)
    spec = FluxSiteSpec(dropout_fraction=0.01)
    sonic = WindMasterStream(clock, spec, seed=4)
    client = sonic.attach()
    clock.advance(2.0)
    lines = sonic.take(client).splitlines(keepends=True)
    assert len(lines) == 40  # 2 s at 20 Hz
    assert sonic.take(client) == b""  # nothing new until the clock moves
    recs = [parse_line(x) for x in lines]
    cols = simulate_half_hour(spec, 4, START).columns
    np.testing.assert_allclose([r.w for r in recs], np.round(cols["w"][:40], 3), atol=1e-9)
    np.testing.assert_allclose([r.sonic_temp for r in recs], np.round(cols["ts"][:40] - 273.15, 2), atol=0.006)
    assert all(r.status == (0 if d == 0 else 0x0B) for r, d in zip(recs, cols["sonic_diag"][:40]))
    sonic.detach(client)
