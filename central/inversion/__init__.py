"""Inversion engine: from measured enhancements to emissions, with uncertainty.

Analytic Bayesian inversion solved in observation space (Yadav & Michalak 2013, GMD 6, 583):
x = xa + B H' (H B H' + R)^-1 (y - H xa), with B = D (C_time (x) C_space) D held in Kronecker form
and footprints held sparsely. Modules, one job each:

- `units`: flux units, molar masses, cell areas, Mt per month.
- `grid`: the flux grid (cells and time steps).
- `covariance`: prior and observation error covariances (Kronecker, never formed in full).
- `footprints`: the sparse observation operator, STILT and combined-netCDF readers and writers.
- `observations`: observation CSV, afternoon window, background subtraction.
- `aggregates`: aggregation operators (region total per month, per sector).
- `solver`: the posterior, aggregate uncertainty and diagnostics (pure numpy/scipy, no I/O).
- `reference`: straightforward dense formulas, the yardstick of tests and benchmark.
- `twin`: the synthetic twin (city grid, stations, footprints, truth, observations).
- `outputs`, `config`, `command`: the edges (netCDF/CSV/PNG/JSON, TOML, the CLI entry).
"""
