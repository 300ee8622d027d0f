"""Inversion benchmark: wall time and peak memory of the solver, with the dense reference alongside.

(a) one flux step on a 100 x 100 grid (n = 10,000), m = 3,000 observations with plume-like
    footprints covering at most 10 % of the cells: solver vs the dense reference (B formed in full)
    on the same problem, same run; the answers are compared.
(b) a month at city scale: 100 x 100 grid, 30 daily steps (n = 300,000), 10 stations with hourly
    afternoon observations (m about 1,500), footprints one day back; the posterior mean and the city
    total's uncertainty. B in full would need n^2 * 8 bytes = 720 GB.
(c) a province: a 1 km grid of 300 x 330 cells over 30 daily steps (n = 2,970,000), 33 stations
    with hourly afternoon observations (m = 4,950); the posterior mean, the region total's
    uncertainty and every cell's monthly posterior 1-sigma (target: under 60 s and 8 GB). Run it
    with (a) in the same invocation (`inversion.py a c`) for the dense-reference ratio at n = 10,000.

Run: .venv/bin/python tests/benchmarks/inversion.py [a] [b] [c]  (each case runs in its own process so
that its peak RSS is its own). Prints one line per figure, each with the process CPU seconds beside
the wall time and the load average (the machine may be shared). INVERSION_BENCH_CACHE=DIR keeps (c)'s
twin problem in DIR (pickled; the twin takes minutes to build) for repeated runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from central.inversion import reference as ref
from central.inversion.aggregates import monthly_mean_weights
from central.inversion.solver import solve
from central.inversion.twin import TwinSpec, make_twin, twin_problem

GRID = dict(ny=100, nx=100, n_stations=10, length_km=10.0, tau_days=5.0, seed=7)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    return "load " + " ".join(f"{v:.1f}" for v in os.getloadavg())


def case_a() -> None:
    spec = TwinSpec(**GRID, days=60, step_hours=60 * 24)
    twin = make_twin(spec)
    problem, _ = twin_problem(twin)
    m = problem.y.size
    support = np.diff(twin.h.rows.indptr).max() / twin.grid.n_cells
    print(f"(a) problem: n = {problem.prior.size}, m = {m}, largest footprint {support:.1%} of cells")
    rss0 = peak_rss_gb()
    times, cpus = [], []
    for _ in range(3):  # the machine is shared: report the best and the worst of three runs
        t0, c0 = time.perf_counter(), cpu_seconds()
        post = solve(problem)
        times.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds() - c0)
    fast = min(times)
    rss_fast = peak_rss_gb()
    print(f"(a) solver wall time: best {fast:.2f} s (CPU {cpus[times.index(fast)]:.2f} s), worst {max(times):.2f} s"
          f" (CPU {cpus[times.index(max(times))]:.2f} s) of 3 runs; {load()}")
    print(f"(a) solver peak RSS: {rss_fast:.2f} GB (before solving {rss0:.2f} GB)")
    t0 = time.perf_counter()
    b = ref.dense_prior_covariance(twin.grid, problem.covariance.sigma, spec.length_km, spec.tau_days,
                                   spec.spatial_model)
    h = ref.dense_h(problem.h, 1)
    g = problem.aggregation.weights.reshape(problem.aggregation.size, -1)
    build = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), cpu_seconds()
    dense = ref.solve_observation_space(b, h, problem.r, problem.y, problem.prior.ravel(), g)
    slow = time.perf_counter() - t0
    print(f"(a) dense reference: forming B and H {build:.2f} s, solve alone {slow:.2f} s"
          f" (CPU {cpu_seconds() - c0:.2f} s) (posterior mean, city total variance, DOFS); {load()}")
    print(f"(a) dense reference peak RSS: {peak_rss_gb():.2f} GB")
    print(f"(a) speed-up: {slow / fast:.1f}x over the dense solve alone,"
          f" {(slow + build) / fast:.1f}x including forming B; {load()}")
    inc = dense.mean - problem.prior.ravel()
    print(f"(a) max relative difference, posterior mean increment: "
          f"{np.max(np.abs(post.mean.ravel() - dense.mean)) / np.max(np.abs(inc)):.1e}")
    print(f"(a) max relative difference, city total variance: "
          f"{np.max(np.abs(post.posterior_total_cov - dense.aggregate_cov) / np.abs(dense.aggregate_cov)):.1e}")
    print(f"(a) DOFS solver {post.diagnostics['dofs']:.3f}, dense {dense.dofs:.3f}")


def case_b() -> None:
    spec = TwinSpec(**GRID, days=30, step_hours=24)
    twin = make_twin(spec)
    problem, _ = twin_problem(twin)
    print(f"(b) problem: n = {problem.prior.size}, m = {problem.y.size}, footprint rows {problem.h.n_rows},"
          f" B in full would need {problem.prior.size**2 * 8 / 1e9:.0f} GB")
    tracemalloc.start()
    t0 = time.perf_counter()
    post = solve(problem)
    wall = time.perf_counter() - t0
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    prior_sd, post_sd = post.total_sigmas()
    print(f"(b) solver wall time (posterior mean + city total uncertainty + diagnostics): {wall:.2f} s")
    print(f"(b) peak RSS of the whole process: {peak_rss_gb():.2f} GB; peak numpy allocations in solve:"
          f" {traced / 1e9:.2f} GB")
    print(f"(b) city total {post.posterior_totals[0]:.3f} +- {post_sd[0]:.3f} Mt CO2"
          f" (prior {post.prior_totals[0]:.3f} +- {prior_sd[0]:.3f}, truth {twin.truth_totals[0]:.3f});"
          f" DOFS {post.diagnostics['dofs']:.1f}, reduced chi-square {post.diagnostics['chi2_reduced']:.2f}")


def case_c() -> None:
    # 1 km cells: 1/111.2 degree of latitude, and of longitude at 40 N divided by cos(40 deg)
    spec = TwinSpec(ny=300, nx=330, dlat=0.009, dlon=0.0117, lat0=38.5, lon0=114.5, n_stations=33,
                    days=30, step_hours=24, length_km=10.0, tau_days=5.0, seed=11)
    t0 = time.perf_counter()
    cache = os.environ.get("INVERSION_BENCH_CACHE")
    key = hashlib.sha256(repr(spec).encode()).hexdigest()[:16]  # str hashes change from process to process
    cached = os.path.join(cache, f"twin_c_{key}.pickle") if cache else None
    if cached and os.path.exists(cached):
        with open(cached, "rb") as fh:
            problem, months, truth_total = pickle.load(fh)
        built = f"twin problem read from {cached}"
    else:
        twin = make_twin(spec)
        problem, _ = twin_problem(twin)
        months, weights = monthly_mean_weights(twin.grid)
        problem = dataclasses.replace(problem, month_weights=weights)
        truth_total = f"{twin.truth_totals[0]:.2f}"
        del twin
        if cached:
            with open(cached, "wb") as fh:
                pickle.dump((problem, months, truth_total), fh, protocol=5)
        built = "twin built"
    build = time.perf_counter() - t0
    print(f"(c) problem: n = {problem.prior.size}, m = {problem.y.size}, footprint rows {problem.h.n_rows}"
          f" ({problem.h.rows.nnz / 1e6:.0f} M entries), months {months}; {built} in {build:.0f} s")
    rss0 = peak_rss_gb()
    stages: dict[str, tuple[float, float]] = {}

    def progress(stage: str, fraction: float) -> None:
        if stage not in stages:
            stages[stage] = (time.perf_counter(), cpu_seconds())

    load0 = load()
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    post = solve(problem, progress)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    # each stage runs from its first progress report (the solver reports 0 as it starts) to the next's
    marks = [("checks", (t0, cpu0)), *sorted(stages.items(), key=lambda kv: kv[1]), ("end", (t0 + wall, cpu0 + cpu))]
    durations = {name: (b[0] - a[0], b[1] - a[1]) for (name, a), (_, b) in zip(marks[:-1], marks[1:])}
    split = ", ".join(f"{name} {w:.1f} s (CPU {c:.1f} s)" for name, (w, c) in durations.items())
    print(f"(c) solver wall time (posterior mean + region total + per-cell monthly 1-sigma + diagnostics):"
          f" {wall:.1f} s, CPU {cpu:.1f} s ({split}); {load0} at the start, {load()} at the end")
    cell_wall, cell_cpu = durations.get("cell uncertainties", (0.0, 0.0))
    print(f"(c) the same solve without the per-cell 1-sigma (Problem.month_weights None: every stage but"
          f" 'cell uncertainties'): {wall - cell_wall:.1f} s, CPU {cpu - cell_cpu:.1f} s; per-cell 1-sigma"
          f" {cell_wall:.1f} s, CPU {cell_cpu:.1f} s")
    print(f"(c) peak RSS of the whole process: {peak_rss_gb():.2f} GB (before solving {rss0:.2f} GB)")
    prior_sd, post_sd = post.total_sigmas()
    reduction = 1 - post.posterior_cell_sigma / post.prior_cell_sigma
    print(f"(c) region total {post.posterior_totals[0]:.2f} +- {post_sd[0]:.2f} Mt CO2"
          f" (prior {post.prior_totals[0]:.2f} +- {prior_sd[0]:.2f}, truth {truth_total});"
          f" DOFS {post.diagnostics['dofs']:.1f}, reduced chi-square {post.diagnostics['chi2_reduced']:.2f};"
          f" per-cell uncertainty reduction median {np.median(reduction):.3f}, max {reduction.max():.3f}")


if __name__ == "__main__":
    which = sys.argv[1:] or ["a", "b", "c"]
    if len(which) > 1:
        for case in which:
            subprocess.run([sys.executable, __file__, case], check=True)
    else:
        {"a": case_a, "b": case_b, "c": case_c}[which[0]]()
