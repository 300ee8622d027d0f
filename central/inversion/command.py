"""`central-receiver invert --config FILE --out DIR`: read inputs, solve, write the four outputs.

`invert(config, out)` returns the exit code: 0 done, 2 for a bad config or an inconsistent,
ill-conditioned or unreadable problem (the message names what was wrong).
"""

from __future__ import annotations

import csv
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ghgnet.config import ConfigError

from . import outputs
from .aggregates import monthly_mean_weights, region_totals
from .config import InversionConfig, load_config
from .covariance import PriorCovariance, exponential_correlation, observation_error, prior_sigma, spatial_correlation
from .footprints import read_combined, read_flexpart_dir, read_stilt_dir
from .grid import FluxGrid, daily_steps
from .observations import afternoon_mask, enhancements, parse_time, read_csv
from .report import ReportContent, StationSeries, comparison_rows, write_report
from .solver import InversionProblemError, Problem, posterior_covariance, solve
from .store_source import period_bounds, read_store_observations, write_store_csv
from .twin import TwinSpec, make_twin, write_twin_inputs
from .units import UnitError, flux_to_umol, molar_mass


class InputError(ValueError):
    """An input file that cannot be used; the message names the file."""


def invert(config: Path, out: Path) -> int:
    """Run the inversion described by `config`, writing outputs into `out`; returns the exit code."""
    console = Console(stderr=True)
    try:
        cfg = load_config(Path(config))
    except ConfigError as exc:
        for line in exc.lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return 2
    try:
        summary = run(cfg, Path(config), Path(out), console)
    except (InversionProblemError, InputError, UnitError, ValueError, OSError) as exc:
        console.print(f"{config}: inversion failed: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    d = summary["diagnostics"]
    console.print(f"wrote {', '.join(summary['outputs'].values())}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"n = {d['n_state']}, m = {d['n_obs']}, DOFS = {d['dofs']:.1f}, "
                  f"reduced chi-square = {d['chi2_reduced']:.2f}", markup=False, highlight=False, soft_wrap=True)
    for row in summary["totals"]:
        console.print(f"{row['month']} {row['sector']}: prior {row['prior_Mt']:.4g} +- {row['prior_sigma_Mt']:.2g},"
                      f" posterior {row['posterior_Mt']:.4g} +- {row['posterior_sigma_Mt']:.2g} Mt",
                      markup=False, highlight=False, soft_wrap=True)
    return 0


@contextmanager
def _progress(console: Console):
    with Progress(TextColumn("{task.description:<22}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def report(stage: str, fraction: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=min(1.0, fraction))

        yield report


def flux_grid(cfg: InversionConfig, lat: np.ndarray, lon: np.ndarray) -> FluxGrid:
    start = parse_time(cfg.period.start)
    starts, seconds = daily_steps(start, cfg.period.days, cfg.period.step_hours)
    return FluxGrid(lat, lon, starts, seconds)


def read_prior(path: Path, variable: str, cfg: InversionConfig) -> tuple[FluxGrid, np.ndarray, list[str]]:
    """Prior fluxes (sector, step, cell) in umol m-2 s-1 on the flux grid, and the sector names."""
    import xarray as xr

    with xr.open_dataset(path) as ds:
        if variable not in ds:
            raise InputError(f"{path}: no variable {variable!r} (has {', '.join(map(str, ds.data_vars))})")
        da = ds[variable]
        units = da.attrs.get("units")
        if units is None:
            raise InputError(f"{path}: {variable} has no units attribute")
        dims = ("sector", "time", "lat", "lon") if "sector" in da.dims else ("time", "lat", "lon")
        if set(da.dims) != set(dims):
            raise InputError(f"{path}: {variable} has dims {da.dims}, expected {dims}")
        da = da.transpose(*dims)
        sectors = [str(s) for s in da["sector"].values] if "sector" in da.dims else ["total"]
        grid = flux_grid(cfg, da["lat"].values.astype(float), da["lon"].values.astype(float))
        values = da.values.astype(float)
        if "sector" not in da.dims:
            values = values[None]
        times = np.asarray(da["time"].values).astype("datetime64[s]")
    mm = molar_mass(cfg.species, cfg.molar_mass_g_per_mol)
    try:
        values = flux_to_umol(values, units, mm)
    except UnitError as exc:
        raise InputError(f"{path}: {exc}") from None
    if times.size == 1:
        values = np.repeat(values, grid.n_steps, axis=1)
    elif times.size != grid.n_steps or np.any(times != grid.step_start):
        raise InputError(f"{path}: prior has {times.size} times that are not the {grid.n_steps} flux step starts")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path}: prior holds NaN or infinite values")
    return grid, values.reshape(len(sectors), grid.n_steps, grid.n_cells), sectors


def read_region(path: Path, variable: str, grid: FluxGrid) -> np.ndarray:
    import xarray as xr

    with xr.open_dataset(path) as ds:
        if variable not in ds:
            raise InputError(f"{path}: no variable {variable!r}")
        da = ds[variable].transpose("lat", "lon")
        if da.shape != (grid.ny, grid.nx) or not np.allclose(da["lat"].values, grid.lat) \
                or not np.allclose(da["lon"].values, grid.lon):
            raise InputError(f"{path}: region mask is not on the prior's grid")
        return np.nan_to_num(da.values.astype(float))


def run(cfg: InversionConfig, config_path: Path, out: Path, console: Console) -> dict:
    """The whole command, returning the JSON summary (raises on any unusable input)."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    truth_totals = None
    if cfg.twin is not None:
        cfg, truth_totals = _generate_twin_inputs(cfg, out / "inputs")
    assert cfg.prior is not None and cfg.observations is not None and cfg.footprints is not None
    grid, prior, sectors = read_prior(cfg.prior.file, cfg.prior.variable, cfg)
    region = read_region(cfg.prior.region_file, cfg.prior.region_variable, grid)
    oc = cfg.observations
    table, background, background_stations, places, store_obs = _read_observations(cfg, grid, out)
    counts = {"hourly means read (all stations, background ones included)": len(table)}
    table = table.select(_afternoon(table, oc, store_obs))
    counts["dropped: outside the afternoon window"] = counts[next(iter(counts))] - len(table)
    in_period = grid.step_of(table.time) >= 0
    counts["dropped: outside the flux period"] = int((~in_period).sum())
    table = table.select(in_period)
    enh, no_background = enhancements(table, background, background_stations)
    counts["background station values (not observations)"] = len(table) - len(enh) - no_background
    counts["dropped: no background value at that hour"] = no_background
    where = oc.file if store_obs is None else store_obs.store
    if len(enh) == 0:
        raise InputError(f"{where}: no afternoon observation with a background inside the period")
    console.print(f"{len(enh)} afternoon observations with a background ({no_background} without)",
                  markup=False, highlight=False, soft_wrap=True)
    fc = cfg.footprints
    if fc.format == "combined":
        h, has, outside = read_combined(fc.path, grid, enh.station, enh.time)
    elif fc.format == "flexpart":
        h, has, outside = read_flexpart_dir(fc.path, grid, enh.station, enh.time)
    else:
        if not places:
            raise InputError("STILT footprints need [[observations.stations]] places to match receptors "
                             "(or latitude/longitude in the central config's [stations.<id>])")
        h, has, outside = read_stilt_dir(fc.path, grid, enh.station, enh.time, places)
    without_footprint = int((~has).sum())
    counts["dropped: no footprint"] = without_footprint
    enh = enh.select(has)
    counts["used"] = len(enh)
    cc = cfg.covariance
    sigma = prior_sigma(prior, cc.prior_fraction, cc.prior_floor)
    cov = PriorCovariance(sigma, exponential_correlation(grid.step_mid_days(), cc.tau_days),
                          spatial_correlation(grid, cc.length_km, cc.spatial_model))
    r = observation_error(np.maximum(enh.measurement_sigma, cc.min_uncertainty_ppm),
                          np.full(len(enh), cc.mismatch_ppm), enh.station, enh.hours(),
                          cc.mismatch_tau_hours, enh.background_sigma, enh.background_group)
    mm = molar_mass(cfg.species, cfg.molar_mass_g_per_mol)
    agg = region_totals(grid, region, mm, sectors)
    months, month_weights = monthly_mean_weights(grid)
    problem = Problem(prior, cov, h, enh.value, r, agg, enh.station, month_weights)
    with _progress(console) as report:
        post = solve(problem, report)
        full_cov = None
        if cfg.output.full_covariance:
            report("full covariance", 0.0)
            full_cov = posterior_covariance(problem, cfg.output.max_full_covariance_state)
            report("full covariance", 1.0)
        report("writing outputs", 0.0)
        files = {key: out / name for key, name in outputs.FILES.items()}
        outputs.write_posterior_netcdf(files["netcdf"], grid, sectors, prior, post.mean, sigma, cfg.species,
                                       outputs.MonthlySigma(months, post.prior_cell_sigma, post.posterior_cell_sigma))
        rows = outputs.totals_rows(agg, post)
        outputs.write_totals_csv(files["totals"], rows)
        inventory, inventory_label = _inventory_totals(cfg, rows)
        comparison = comparison_rows(rows, inventory)
        outputs.write_comparison_csv(files["comparison"], comparison)
        report("writing outputs", 0.2)
        outputs.write_figure(files["figure"], grid, prior, post.mean, rows, cfg.species,
                             None if truth_totals is None else [float(v) for v in truth_totals])
        if full_cov is not None:
            outputs.write_covariance(files["covariance"], full_cov)
        report("writing outputs", 0.4)
        series = StationSeries(enh.time, enh.station, enh.value, enh.value - post.innovation,
                               enh.value - post.residual, np.sqrt(np.diag(r)))
        content = ReportContent(
            cfg.species, grid, sectors, prior, post.mean, months, post.prior_cell_sigma, post.posterior_cell_sigma,
            rows, comparison, inventory_label, series, post.diagnostics, counts, Path(config_path).read_text(),
            str(config_path), stations=places, region=region.reshape(grid.ny, grid.nx),
            truth_totals=None if truth_totals is None else [float(v) for v in truth_totals])
        write_report(files["report_html"], files["report_pdf"], content)
        report("writing outputs", 1.0)
    written = {k: str(v) for k, v in files.items() if k != "covariance" or full_cov is not None}
    summary = {
        "config": str(config_path),
        "species": cfg.species,
        "units": {"flux": "umol m-2 s-1", "totals": f"Mt {cfg.species} per month", "observations": "ppm"},
        "grid": {"ny": grid.ny, "nx": grid.nx, "steps": grid.n_steps, "sectors": sectors},
        "observations": {"source": oc.source, "used": int(len(enh)), "without_background": no_background,
                         "without_footprint": without_footprint,
                         "footprint_fraction_outside_period_mean": float(np.mean(outside)) if outside else 0.0,
                         "counts": counts},
        "diagnostics": post.diagnostics,
        "totals": rows,
        "comparison": comparison,
        "outputs": written,
        "wall_time_s": time.perf_counter() - t0,
    }
    if store_obs is not None:
        summary["observations"].update(store_obs.summary())
        summary["observations"]["used_by_station"] = {
            str(s): int(n) for s, n in zip(*np.unique(enh.station, return_counts=True))}
    if truth_totals is not None:
        summary["twin_truth_totals_Mt"] = [float(v) for v in truth_totals]
    outputs.write_summary(files["summary"], summary)
    return summary


def _inventory_totals(cfg: InversionConfig, rows: list[dict]) -> tuple[dict[tuple[str, str], float], str]:
    """The inventory's own region totals per (month, sector), Mt, from `[output] inventory_totals`
    (CSV month,sector,inventory_Mt), or else the prior's region totals (the gridded inventory)."""
    path = cfg.output.inventory_totals
    if path is None:
        return {(r["month"], r["sector"]): r["prior_Mt"] for r in rows}, "the prior's region total (gridded inventory)"
    totals = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"month", "sector", "inventory_Mt"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"{path}: missing columns {', '.join(sorted(missing))} (month, sector, inventory_Mt)")
        for line, row in enumerate(reader, start=2):
            try:
                totals[(row["month"].strip(), row["sector"].strip())] = float(row["inventory_Mt"])
            except ValueError:
                raise InputError(f"{path}: line {line}: inventory_Mt {row['inventory_Mt']!r} is not a number") from None
    return totals, f"inventory totals from {path.name}"


def _read_observations(cfg: InversionConfig, grid: FluxGrid, out: Path):
    """(table, background series or None, background station ids, STILT places, StoreObservations
    or None) from the configured source. The store's selection is written to OUT/inputs so the run
    can be repeated from the CSV."""
    oc = cfg.observations
    assert oc is not None
    background = read_csv(oc.background_file) if oc.background_file is not None else None
    places = {s.id: (s.lat, s.lon) for s in oc.stations}
    if oc.source == "csv":
        assert oc.file is not None
        return read_csv(oc.file), background, list(oc.background_stations), places, None
    assert oc.store is not None
    start, end = period_bounds(grid)
    obs = read_store_observations(oc.store, cfg.species, start, end, oc.afternoon_first_hour,
                                  oc.afternoon_last_hour, list(oc.background_stations),
                                  oc.background_file is not None)
    write_store_csv(out / "inputs" / "observations.csv", obs)
    if not places:
        places = {sid: (s.latitude, s.longitude) for sid, s in obs.sites.items()
                  if s.latitude is not None and s.longitude is not None}
    return obs.table, background, obs.background_stations, places, obs


def _afternoon(table, oc, store_obs) -> np.ndarray:
    """The CSV path's afternoon window (one UTC offset); the store's selection is already local
    to each station."""
    if store_obs is not None:
        return np.ones(len(table), dtype=bool)
    return afternoon_mask(table.time, oc.utc_offset_hours, oc.afternoon_first_hour, oc.afternoon_last_hour)


def _generate_twin_inputs(cfg: InversionConfig, folder: Path) -> tuple[InversionConfig, np.ndarray]:
    """Simulate the twin with the config's period and covariances; point the config at its files."""
    tw, cc = cfg.twin, cfg.covariance
    assert tw is not None
    spec = TwinSpec(ny=tw.ny, nx=tw.nx, lat0=tw.lat0, lon0=tw.lon0, dlat=tw.dlat, dlon=tw.dlon,
                    start=str(parse_time(cfg.period.start)), days=cfg.period.days,
                    step_hours=cfg.period.step_hours, n_stations=tw.n_stations,
                    utc_offset_hours=tw.utc_offset_hours, sectors=tuple(tw.sectors), species=cfg.species,
                    prior_fraction=cc.prior_fraction, prior_floor=cc.prior_floor, length_km=cc.length_km,
                    tau_days=cc.tau_days, spatial_model=cc.spatial_model, measurement_sigma=tw.measurement_ppm,
                    mismatch_sigma=cc.mismatch_ppm, background_sigma=tw.background_ppm, seed=tw.seed)
    twin = make_twin(spec, keep_layers=True)
    paths = write_twin_inputs(twin, folder)
    data = cfg.model_dump()
    data.pop("twin")
    data["prior"] = {"file": paths["prior"], "region_file": paths["region"]}
    data["observations"] = {"file": paths["observations"], "utc_offset_hours": tw.utc_offset_hours,
                            "background_stations": [twin.background_station],
                            "stations": [{"id": sid, "lat": float(la), "lon": float(lo)} for sid, la, lo
                                         in zip(twin.station_ids, twin.station_lat, twin.station_lon)]}
    data["footprints"] = {"format": "combined", "path": paths["footprints"]}
    return InversionConfig.model_validate(data), twin.truth_totals


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry for development: python -m central.inversion.command CONFIG OUT."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m central.inversion.command CONFIG OUT_DIR", file=sys.stderr)
        return 2
    return invert(Path(args[0]), Path(args[1]))


if __name__ == "__main__":
    raise SystemExit(main())
