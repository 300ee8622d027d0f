"""Twin experiments: the inversion finds the truth within its stated uncertainty."""

from __future__ import annotations

import numpy as np

from central.inversion.solver import solve
from central.inversion.twin import TwinSpec, make_twin, twin_problem

TRIALS = 50


def test_fifty_seeded_trials_cover_the_true_city_total_and_have_chi_square_near_one():
    inside, chi2 = [], []
    for seed in range(TRIALS):
        twin = make_twin(TwinSpec(ny=12, nx=12, days=4, n_stations=4, seed=seed))
        problem, _ = twin_problem(twin)
        post = solve(problem)
        _, post_sd = post.total_sigmas()
        inside.append(abs(post.posterior_totals[0] - twin.truth_totals[0]) <= 2 * post_sd[0])
        chi2.append(post.diagnostics["chi2_reduced"])
    coverage = float(np.mean(inside))
    print(f"twin: coverage {coverage:.2f}, mean reduced chi-square {np.mean(chi2):.3f}")
    assert coverage >= 0.90
    assert 0.8 <= np.mean(chi2) <= 1.2


def test_observations_reduce_the_uncertainty_of_the_city_total():
    twin = make_twin(TwinSpec(ny=16, nx=16, days=5, n_stations=5, sectors=("buildings", "transport"), seed=3))
    problem, _ = twin_problem(twin)
    post = solve(problem)
    prior_sd, post_sd = post.total_sigmas()
    assert post.prior_totals.shape == (3,)  # total and two sectors, one month
    assert post_sd[0] < 0.6 * prior_sd[0]
    assert np.all(post_sd <= prior_sd)
    assert abs(post.posterior_totals[0] - twin.truth_totals[0]) < abs(post.prior_totals[0] - twin.truth_totals[0]) + 2 * post_sd[0]


def test_twin_footprints_stay_within_the_requested_fraction_of_cells():
    spec = TwinSpec(ny=20, nx=20, days=2, max_footprint_fraction=0.10, seed=5)
    twin = make_twin(spec, keep_layers=True)
    support = (twin.layers.sum(axis=1) > 0).reshape(twin.layers.shape[0], -1).sum(axis=1)
    assert support.max() <= 0.10 * 400
    assert support.min() > 0
