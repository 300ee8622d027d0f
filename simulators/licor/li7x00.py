"""A simulated LI-7500 (open path) or LI-7200 (enclosed path): the labelled RS-232 data stream of
the simulated flux site's CO2 and H2O.

The gases come from simulators.flux_site at the site's rate, in the analyzer's record format
(drivers.licor.li7x00.format_record), timed by the injected clock (simulators.flux_stream), so a
sonic and an analyzer on one clock send the same instants. Open path: CO2D and H2OD (mmol m-3);
enclosed path: CO2MF (umol/mol) and H2OMF (mmol/mol), wet. `Ndx` counts records since the epoch.
Records under a bad diagnostic clear the PLL bit and carry the garbage values.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from drivers.licor.li7x00 import DIAG_BITS_LI7200, DIAG_BITS_LI7500, format_record
from ghgnet.clock import Clock
from simulators.flux_site import FluxSiteSpec
from simulators.flux_stream import FluxInstrument, FluxSiteStream, ServedStream

AGC_BITS = 0x6  # 37.5 %: clean optics
PLL_BIT = 5


def healthy_diag(model: str) -> int:
    """The diagnostic word of a healthy analyzer: every OK bit set, the AGC bits at AGC_BITS."""
    bits = DIAG_BITS_LI7200 if model == "li7200" else DIAG_BITS_LI7500
    return sum(1 << b for b in bits) | AGC_BITS


class Li7x00Stream(FluxSiteStream):
    """The stream of one analyzer (`model` "li7500" or "li7200", matching the site's path)."""

    def __init__(self, clock: Clock, spec: FluxSiteSpec | None = None, seed: int = 0, model: str = "li7500") -> None:
        super().__init__(clock, spec, seed)
        if model not in ("li7500", "li7200"):
            raise ValueError(f"LI-7x00 simulator: model {model!r} is not 'li7500' or 'li7200'")
        self.model = model
        self.good = healthy_diag(model)

    def line(self, columns: dict[str, np.ndarray], k: int, index: int) -> bytes:
        c = columns
        diag = self.good if c["gas_diag"][k] == 0 else self.good & ~(1 << PLL_BIT)
        co2, h2o = float(c["co2"][k]), float(c["h2o"][k])
        gases = {"CO2D": co2, "H2OD": h2o} if self.spec.path == "open" else {"CO2MF": co2, "H2OMF": h2o}
        return format_record({"Ndx": index % 2**31, "DiagVal": diag, **gases,
                              "Temp": self.spec.temperature_k - 273.15, "Pres": float(c["pressure_pa"][k]) / 1000.0})


class Li7x00Instrument(FluxInstrument):
    model: Literal["licor.li7500", "licor.li7200"] = "licor.li7500"


class Li7x00Bench:
    """The bench model of the LI-7500 / LI-7200 (entry points licor.li7500, licor.li7200): serves itself."""

    kind = "analyzer"
    Config = Li7x00Instrument

    @staticmethod
    def build(config: Li7x00Instrument, clock: Clock, gas: object = None) -> ServedStream:
        model = config.model.removeprefix("licor.")
        return ServedStream(Li7x00Stream(clock, config.spec(), config.seed, model), config)
