"""The inversion's outputs: posterior netCDF (CF-1.8), totals and comparison CSVs, PNG figure, JSON
summary (the HTML and PDF report: report/)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .aggregates import Aggregation
from .grid import FluxGrid
from .solver import Posterior

FILES = {"netcdf": "posterior_flux.nc", "totals": "totals.csv", "comparison": "comparison.csv",
         "figure": "inversion.png", "report_html": "report.html", "report_pdf": "report.pdf",
         "summary": "summary.json", "covariance": "posterior_covariance.nc"}


@dataclass(frozen=True)
class MonthlySigma:
    """1-sigma of each cell's monthly mean flux per sector, (sector, month, cell), umol m-2 s-1."""

    months: list[str]  # YYYY-MM
    prior: np.ndarray
    posterior: np.ndarray


def write_posterior_netcdf(path: Path, grid: FluxGrid, sectors: list[str], prior: np.ndarray,
                           posterior: np.ndarray, sigma: np.ndarray, species: str,
                           monthly: MonthlySigma | None = None) -> None:
    """Prior, posterior and prior 1-sigma fluxes (umol m-2 s-1) on the grid, CF-1.8; with `monthly`,
    the prior and posterior 1-sigma of each cell's monthly mean flux per sector on a `month` axis."""
    import xarray as xr

    k = len(sectors)
    shape = (k, grid.n_steps, grid.ny, grid.nx)
    seconds = "seconds since 1970-01-01 00:00:00"
    start = grid.step_start.astype(np.int64).astype(float)
    bounds = np.stack([start, start + grid.step_seconds], axis=1)
    attrs = {"units": "umol m-2 s-1", "grid_mapping": "crs"}

    def var(name: str, data: np.ndarray, long_name: str):
        return (("sector", "time", "lat", "lon"), data.reshape(shape),
                {**attrs, "long_name": long_name})

    ds = xr.Dataset(
        {
            "prior_flux": var("prior_flux", prior, f"prior {species} flux"),
            "posterior_flux": var("posterior_flux", posterior, f"posterior {species} flux"),
            "prior_flux_uncertainty": var("sigma", sigma, f"prior {species} flux 1-sigma"),
            "time_bnds": (("time", "nv"), bounds, {"units": seconds}),
            "crs": ((), 0, {"grid_mapping_name": "latitude_longitude",
                            "semi_major_axis": 6371008.8, "inverse_flattening": 0.0}),
        },
        coords={
            "time": ("time", start, {"units": seconds, "calendar": "standard", "standard_name": "time",
                                     "axis": "T", "bounds": "time_bnds", "long_name": "start of flux step"}),
            "lat": ("lat", grid.lat, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
            "lon": ("lon", grid.lon, {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
            "sector": ("sector", np.array(sectors, dtype=str), {"long_name": "emission sector"}),
        },
        attrs={"Conventions": "CF-1.8", "title": f"ghgnet analytic Bayesian inversion of {species} fluxes",
               "source": "ghgnet central.inversion", "history": f"{np.datetime64('now', 's')}Z created"},
    )
    encoding = {"time": {"dtype": "float64"}}
    if monthly is not None:
        month_start = np.array([np.datetime64(m, "M").astype("datetime64[s]") for m in monthly.months])
        mshape = (k, len(monthly.months), grid.ny, grid.nx)
        for name, data, what in (("prior_monthly_flux_uncertainty", monthly.prior, "prior"),
                                 ("posterior_monthly_flux_uncertainty", monthly.posterior, "posterior")):
            ds[name] = (("sector", "month", "lat", "lon"), data.reshape(mshape),
                        {**attrs, "long_name": f"{what} 1-sigma of the {species} flux averaged over the calendar"
                         " month (the part inside the period)"})
        ds = ds.assign_coords(month=("month", month_start.astype(np.int64).astype(float),
                                     {"units": seconds, "calendar": "standard", "long_name": "start of calendar month"}))
        encoding["month"] = {"dtype": "float64"}
    ds.to_netcdf(path, encoding=encoding)


def totals_rows(agg: Aggregation, post: Posterior) -> list[dict]:
    prior_sd, post_sd = post.total_sigmas()
    rows = []
    for i in range(agg.size):
        reduction = 1.0 - post_sd[i] / prior_sd[i] if prior_sd[i] > 0 else 0.0
        rows.append({"month": agg.month[i], "sector": agg.sector[i],
                     "prior_Mt": float(post.prior_totals[i]), "prior_sigma_Mt": float(prior_sd[i]),
                     "posterior_Mt": float(post.posterior_totals[i]), "posterior_sigma_Mt": float(post_sd[i]),
                     "uncertainty_reduction": float(reduction)})
    return rows


def write_totals_csv(path: Path, rows: list[dict]) -> None:
    """One row per month (and sector): Mt of the species, 1-sigma, uncertainty reduction 1 - post/prior."""
    with path.open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=list(rows[0]))
        out.writeheader()
        for row in rows:
            out.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def write_comparison_csv(path: Path, rows: list[dict]) -> None:
    """Inventory vs top-down per month and sector (report.comparison_rows): Mt, difference, relative
    difference to the inventory and difference in posterior 1-sigma."""
    fields = ["month", "sector", "inventory_Mt", "posterior_Mt", "posterior_sigma_Mt", "difference_Mt",
              "relative_difference", "difference_in_sigma"]
    with path.open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=fields)
        out.writeheader()
        for row in rows:
            out.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def write_figure(path: Path, grid: FluxGrid, prior: np.ndarray, posterior: np.ndarray, rows: list[dict],
                 species: str, truth: list[float] | None = None) -> None:
    """Prior, posterior and difference maps (period mean, all sectors), and the monthly totals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = grid.step_seconds / grid.step_seconds.sum()
    pri = np.tensordot(w, prior.sum(axis=0), axes=(0, 0)).reshape(grid.ny, grid.nx)
    pos = np.tensordot(w, posterior.sum(axis=0), axes=(0, 0)).reshape(grid.ny, grid.nx)
    extent = (grid.lon[0], grid.lon[-1], grid.lat[0], grid.lat[-1])
    fig, axes = plt.subplots(2, 2, figsize=(11, 9), constrained_layout=True)
    vmax = max(np.percentile(pri, 99.5), np.percentile(pos, 99.5))
    for ax, data, title in ((axes[0, 0], pri, "prior"), (axes[0, 1], pos, "posterior")):
        im = ax.imshow(data, origin="lower", extent=extent, vmin=min(0.0, pos.min()), vmax=vmax, cmap="viridis")
        ax.set_title(f"{title} {species} flux, period mean")
        fig.colorbar(im, ax=ax, label="umol m-2 s-1")
    diff = pos - pri
    lim = np.max(np.abs(diff)) or 1.0
    im = axes[1, 0].imshow(diff, origin="lower", extent=extent, vmin=-lim, vmax=lim, cmap="RdBu_r")
    axes[1, 0].set_title("posterior - prior")
    fig.colorbar(im, ax=axes[1, 0], label="umol m-2 s-1")
    ax = axes[1, 1]
    totals = [r for r in rows if r["sector"] == "total"]
    x = np.arange(len(totals))
    ax.errorbar(x - 0.1, [r["prior_Mt"] for r in totals], yerr=[r["prior_sigma_Mt"] for r in totals],
                fmt="o", capsize=4, label="prior (1-sigma)")
    ax.errorbar(x + 0.1, [r["posterior_Mt"] for r in totals], yerr=[r["posterior_sigma_Mt"] for r in totals],
                fmt="s", capsize=4, label="posterior (1-sigma)")
    if truth is not None:
        ax.plot(x, truth[: len(totals)], "k*", markersize=10, label="twin truth")
    ax.set_xticks(x, [r["month"] for r in totals])
    ax.set_ylabel(f"Mt {species} per month (region)")
    ax.set_title("region total")
    ax.legend()
    for a in axes.flat[:3]:
        a.set_xlabel("longitude")
        a.set_ylabel("latitude")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_summary(path: Path, summary: dict) -> None:
    path.write_text(json.dumps(summary, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def write_covariance(path: Path, cov: np.ndarray) -> None:
    import xarray as xr

    xr.Dataset({"posterior_covariance": (("state", "state2"), cov, {"units": "(umol m-2 s-1)2",
               "comment": "state ordered (sector, time, lat, lon), lon fastest"})}).to_netcdf(path)
