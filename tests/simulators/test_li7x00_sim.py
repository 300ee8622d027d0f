"""The simulated LI-7500/LI-7200: its stream is the flux site's gases in the analyzer's record format,
paced by the injected clock and aligned with the sonic's, and the driver reads it back."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from drivers.licor.li7x00 import LI7500, parse_line
from drivers.testing import ScriptedTransport
from ghgnet.clock import ManualClock
from simulators.flux_site import FluxSiteSpec, simulate_half_hour
from simulators.gill.windmaster import WindMasterStream
from simulators.licor.li7x00 import Li7x00Stream, healthy_diag

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_the_stream_carries_the_sites_gases_at_the_sonics_instants():
    clock = ManualClock(START)
    spec = FluxSiteSpec(fs_hz=10.0, dropout_fraction=0.02)
    irga, sonic = Li7x00Stream(clock, spec, seed=4), WindMasterStream(clock, spec, seed=4)
    a, b = irga.attach(), sonic.attach()
    clock.advance(3.0)
    lines, sonic_lines = irga.take(a).splitlines(keepends=True), sonic.take(b).splitlines()
    assert len(lines) == len(sonic_lines) == 30  # 3 s at 10 Hz, the same instants
    assert irga.take(a) == b""
    recs = [r for x in lines for r in parse_line(x)]
    cols = simulate_half_hour(spec, 4, START).columns
    np.testing.assert_allclose([r.fields["CO2D"] for r in recs], cols["co2"][:30], rtol=1e-7)
    np.testing.assert_allclose([r.fields["H2OD"] for r in recs], cols["h2o"][:30], rtol=1e-7)
    assert [r.index for r in recs] == list(range(recs[0].index, recs[0].index + 30))
    assert all((r.diag == healthy_diag("li7500")) == (d == 0) for r, d in zip(recs, cols["gas_diag"][:30]))


def test_the_driver_reads_the_simulator_and_flags_its_dropouts():
    clock = ManualClock(START)
    spec = FluxSiteSpec(fs_hz=20.0, dropout_fraction=0.05)
    irga = Li7x00Stream(clock, spec, seed=1)
    drv = LI7500(LI7500.Config(id="irga", url="loop://", output_rate_hz=20), ScriptedTransport([(None, irga.lines(0, 400))]))
    drv.open()
    drv.now = lambda: START
    result = drv.poll()
    assert not result.problems and len(result.readings) == 400
    cols = simulate_half_hour(spec, 1, datetime.fromtimestamp(0, tz=UTC)).columns
    assert [r.status_ok for r in result.readings] == [d == 0 for d in cols["gas_diag"][:400]]
    assert not all(r.status_ok for r in result.readings)


def test_an_unknown_model_is_refused():
    with pytest.raises(ValueError, match="model 'li7700'"):
        Li7x00Stream(ManualClock(START), model="li7700")
