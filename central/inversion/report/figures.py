"""The report's figures, each sized for a page of A4 (8.3 x 11.7 in) with 9-point text or larger,
so they read on paper as on screen. Each function returns a matplotlib Figure (Agg, no display)."""

from __future__ import annotations

import matplotlib.dates as mdates
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .content import ReportContent

PAGE_W = 8.27  # in, A4 portrait
PAGE_H = 11.69
STYLE = {"font.size": 9.5, "axes.titlesize": 10.5, "axes.labelsize": 9.5, "legend.fontsize": 8.5,
         "xtick.labelsize": 8.5, "ytick.labelsize": 8.5}
STATIONS_PER_PAGE = 6


def _period_mean(content: ReportContent, flux: np.ndarray) -> np.ndarray:
    """(ny, nx): the time-weighted mean over the period, all sectors summed."""
    g = content.grid
    w = g.step_seconds / g.step_seconds.sum()
    return np.tensordot(w, flux.sum(axis=0), axes=(0, 0)).reshape(g.ny, g.nx)


def _stations(ax, content: ReportContent) -> None:
    for name, (lat, lon) in content.stations.items():
        ax.plot(lon, lat, marker="^", color="white", markeredgecolor="black", markersize=8, linestyle="none")
        ax.annotate(name, (lon, lat), xytext=(4, 4), textcoords="offset points", fontsize=8,
                    color="black", bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7, "lw": 0})


def _region_outline(ax, content: ReportContent) -> None:
    if content.region is not None and content.region.max() > 0:
        g = content.grid
        ax.contour(g.lon, g.lat, content.region, levels=[0.5], colors="black", linewidths=0.8, linestyles="--")


def maps(content: ReportContent) -> Figure:
    """Prior, posterior and posterior - prior (period mean, all sectors), and the uncertainty
    reduction 1 - posterior/prior 1-sigma of each cell's first-month mean flux (per sector: the
    first sector's, or the only one)."""
    g = content.grid
    fig = Figure(figsize=(PAGE_W, PAGE_H * 0.8), layout="constrained")
    axes = fig.subplots(2, 2)
    pri, pos = _period_mean(content, content.prior), _period_mean(content, content.posterior)
    half_x, half_y = 0.5 * (g.lon[1] - g.lon[0]), 0.5 * (g.lat[1] - g.lat[0])  # cell edges, not centres
    extent = (g.lon[0] - half_x, g.lon[-1] + half_x, g.lat[0] - half_y, g.lat[-1] + half_y)
    vmin = min(0.0, float(pri.min()), float(pos.min()))
    vmax = max(float(np.percentile(pri, 99.5)), float(np.percentile(pos, 99.5)))
    unit = "umol m-2 s-1"
    for ax, data, title in ((axes[0, 0], pri, "prior"), (axes[0, 1], pos, "posterior")):
        im = ax.imshow(data, origin="lower", extent=extent, vmin=vmin, vmax=vmax, cmap="viridis", aspect="auto")
        ax.set_title(f"{title} {content.species} flux, period mean")
        fig.colorbar(im, ax=ax, label=unit, shrink=0.9)
    diff = pos - pri
    lim = float(np.max(np.abs(diff))) or 1.0
    im = axes[1, 0].imshow(diff, origin="lower", extent=extent, vmin=-lim, vmax=lim, cmap="RdBu_r", aspect="auto")
    axes[1, 0].set_title("posterior - prior")
    fig.colorbar(im, ax=axes[1, 0], label=unit, shrink=0.9)
    reduction = 1.0 - content.posterior_cell_sigma[0, 0] / content.prior_cell_sigma[0, 0]
    im = axes[1, 1].imshow(reduction.reshape(g.ny, g.nx), origin="lower", extent=extent, vmin=0,
                           vmax=max(0.05, float(reduction.max())), cmap="magma_r", aspect="auto")
    axes[1, 1].set_title(f"uncertainty reduction, {content.sectors[0]}, {content.months[0]} mean")
    fig.colorbar(im, ax=axes[1, 1], label="1 - posterior/prior 1-sigma", shrink=0.9)
    for ax in axes.flat:
        _region_outline(ax, content)
        _stations(ax, content)
        ax.xaxis.set_major_locator(MaxNLocator(5))  # longitudes with decimals: fewer ticks keep them apart
        ax.set_xlabel("longitude (deg E)")
        ax.set_ylabel("latitude (deg N)")
    fig.suptitle("Fluxes and stations (triangles); dashed: the region", fontsize=11)
    return fig


def totals(content: ReportContent) -> Figure:
    """Monthly region totals per sector: prior and posterior with 1-sigma bars, the inventory's
    own total, and the twin's truth when simulated."""
    sectors = list(dict.fromkeys(r["sector"] for r in content.totals))
    inventory = {(r["month"], r["sector"]): r["inventory_Mt"] for r in content.comparison}
    fig = Figure(figsize=(PAGE_W, min(PAGE_H * 0.9, 2.6 + 2.4 * len(sectors))), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(sectors), 1, squeeze=False)[:, 0])
    for ax, sector in zip(axes, sectors):
        rows = [r for r in content.totals if r["sector"] == sector]
        x = np.arange(len(rows))
        ax.errorbar(x - 0.12, [r["prior_Mt"] for r in rows], yerr=[r["prior_sigma_Mt"] for r in rows],
                    fmt="o", capsize=5, color="tab:blue", label="prior, 1-sigma")
        ax.errorbar(x + 0.12, [r["posterior_Mt"] for r in rows], yerr=[r["posterior_sigma_Mt"] for r in rows],
                    fmt="s", capsize=5, color="tab:red", label="posterior, 1-sigma")
        inv = [inventory.get((r["month"], sector), np.nan) for r in rows]
        if np.any(np.isfinite(inv)):
            ax.plot(x, inv, "D", color="black", markerfacecolor="none", markersize=9, label=content.inventory_label)
        if content.truth_totals is not None and sector == "total":
            ax.plot(x, content.truth_totals[: len(rows)], "k*", markersize=10, label="twin truth")
        ax.set_xticks(x, [r["month"] for r in rows])
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylabel(f"Mt {content.species} / month")
        ax.set_title(f"region total, {sector}")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="best")
    return fig


def station_series(content: ReportContent) -> list[Figure]:
    """Per station, observed vs modelled enhancement (prior and posterior fluxes through the
    footprints), one page per STATIONS_PER_PAGE stations."""
    s = content.series
    names = [str(n) for n in np.unique(s.station)]
    figures = []
    for first in range(0, len(names), STATIONS_PER_PAGE):
        page = names[first : first + STATIONS_PER_PAGE]
        fig = Figure(figsize=(PAGE_W, 1.0 + 1.65 * len(page)), layout="constrained")
        axes = fig.subplots(len(page), 1, squeeze=False)[:, 0]
        for ax, name in zip(axes, page):
            sel = s.station == name
            t = s.time[sel].astype("datetime64[s]").astype("O")
            ax.errorbar(t, s.observed[sel], yerr=s.sigma[sel], fmt="o", markersize=3, color="black",
                        elinewidth=0.6, label="observed, obs. error 1-sigma")
            ax.plot(t, s.prior_model[sel], "s", markersize=3, color="tab:blue", label="prior modelled")
            ax.plot(t, s.posterior_model[sel], "^", markersize=3, color="tab:red", label="posterior modelled")
            rms_pri = float(np.sqrt(np.mean((s.observed[sel] - s.prior_model[sel]) ** 2)))
            rms_post = float(np.sqrt(np.mean((s.observed[sel] - s.posterior_model[sel]) ** 2)))
            ax.set_title(f"{name}: {int(sel.sum())} observations, RMS obs - model prior {rms_pri:.2f},"
                         f" posterior {rms_post:.2f} ppm")
            ax.set_ylabel(f"{content.species} enh. (ppm)")
            ax.grid(alpha=0.3)
            locator = mdates.AutoDateLocator()
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        axes[-1].set_xlabel("time (UTC)")
        fig.suptitle("Observed and modelled enhancements over background", fontsize=11)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
        figures.append(fig)
    return figures
