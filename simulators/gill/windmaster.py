"""A simulated Gill WindMaster: the UVW ASCII stream of the simulated flux site's wind.

The wind comes from simulators.flux_site (turbulence with a known flux, the sonic's tilt, spikes),
sent in the anemometer's line format (drivers.gill.windmaster.format_line) at the site's rate,
timed by the injected clock (simulators.flux_stream). Records under a bad diagnostic carry status
0x0B (a failed path) and the garbage values.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from drivers.gill.windmaster import WindMasterRecord, format_line
from ghgnet.clock import Clock
from simulators.flux_site import FluxSiteSpec
from simulators.flux_stream import FluxInstrument, FluxSiteStream, ServedStream

FAILED_PATH_STATUS = 0x0B


class WindMasterStream(FluxSiteStream):
    """The stream of one anemometer; `lines(start_index, count)` for tests without a clock."""

    def __init__(self, clock: Clock, spec: FluxSiteSpec | None = None, seed: int = 0, node: str = "Q") -> None:
        super().__init__(clock, spec, seed)
        self.node = node

    def line(self, columns: dict[str, np.ndarray], k: int, index: int) -> bytes:
        c = columns
        ts_c = float(c["ts"][k]) - 273.15
        sos = 20.067 * np.sqrt(max(float(c["ts"][k]), 1.0))  # Ts = c^2 / 403 (Kaimal and Gaynor 1991)
        status = 0 if c["sonic_diag"][k] == 0 else FAILED_PATH_STATUS
        u, v, w, ts = (float(np.clip(x, -999, 999)) for x in (c["u"][k], c["v"][k], c["w"][k], ts_c))
        return format_line(WindMasterRecord(self.node, u, v, w, sos, ts, status))


class WindMasterInstrument(FluxInstrument):
    model: Literal["gill.windmaster"] = "gill.windmaster"


class WindMasterBench:
    """The bench model of the WindMaster (entry point gill.windmaster): serves itself."""

    kind = "analyzer"
    Config = WindMasterInstrument

    @staticmethod
    def build(config: WindMasterInstrument, clock: Clock, gas: object = None) -> ServedStream:
        return ServedStream(WindMasterStream(clock, config.spec(), config.seed), config)
