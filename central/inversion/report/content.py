"""What the report shows, gathered by the command from the inputs and the solution (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..grid import FluxGrid


@dataclass
class StationSeries:
    """Each observation used: its time (UTC), station and enhancement (ppm), observed and modelled
    with the prior and the posterior fluxes, with its observation error 1-sigma (sqrt of R's diagonal)."""

    time: np.ndarray
    station: np.ndarray
    observed: np.ndarray
    prior_model: np.ndarray
    posterior_model: np.ndarray
    sigma: np.ndarray


@dataclass
class ReportContent:
    species: str
    grid: FluxGrid
    sectors: list[str]
    prior: np.ndarray  # (sector, step, cell) umol m-2 s-1
    posterior: np.ndarray
    months: list[str]
    prior_cell_sigma: np.ndarray  # (sector, month, cell) 1-sigma of the monthly mean flux
    posterior_cell_sigma: np.ndarray
    totals: list[dict]  # outputs.totals_rows
    comparison: list[dict]  # comparison_rows
    inventory_label: str  # where the inventory totals come from
    series: StationSeries
    diagnostics: dict
    observation_counts: dict[str, int]  # read, dropped by reason, used
    config_text: str
    config_path: str
    stations: dict[str, tuple[float, float]] = field(default_factory=dict)  # id -> (lat, lon)
    truth_totals: list[float] | None = None  # the twin's true totals, when simulated
    region: np.ndarray | None = None  # (ny, nx) fraction of each cell in the region


def comparison_rows(totals: list[dict], inventory: dict[tuple[str, str], float]) -> list[dict]:
    """Inventory vs top-down per month and sector: the difference posterior - inventory, relative
    to the inventory, and in units of the posterior 1-sigma (|z| > 2: the inventory lies outside the
    posterior's 95 % interval). Rows without an inventory value are left out."""
    rows = []
    for row in totals:
        key = (row["month"], row["sector"])
        if key not in inventory:
            continue
        inv = float(inventory[key])
        diff = row["posterior_Mt"] - inv
        sigma = row["posterior_sigma_Mt"]
        rows.append({"month": row["month"], "sector": row["sector"], "inventory_Mt": inv,
                     "posterior_Mt": row["posterior_Mt"], "posterior_sigma_Mt": sigma,
                     "difference_Mt": diff, "relative_difference": diff / inv if inv != 0 else float("nan"),
                     "difference_in_sigma": diff / sigma if sigma > 0 else float("nan")})
    return rows
