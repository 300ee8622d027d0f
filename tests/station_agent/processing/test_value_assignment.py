"""Value assignment of a working standard against references: hand-computed values and budgets."""

import math

import numpy as np
import pytest

from ghgnet.processing.calibration import fit_species
from ghgnet.processing.value_assignment import (
    ReferenceStandard,
    assign_species,
    prediction_weights,
    value_assignment,
)

A = ReferenceStandard("REF-A", 380.0, 0.03, "WMO-CO2-X2019", ({"id": "NOAA-1"},))
B = ReferenceStandard("REF-B", 420.0, 0.04, "WMO-CO2-X2019")


def test_two_references_hand_computed_value_and_uncertainty():
    # readings 1 ppm low on both references: f(x) = x + 1; candidate read 399.0, 399.2, 398.8
    got = assign_species("co2", [A, B], [[379.0, 419.0]] * 3, [399.0, 399.2, 398.8])
    assert got.cycle_values == pytest.approx((400.0, 400.2, 399.8))
    assert got.value == pytest.approx(400.0)
    # halfway between the references: w = (0.5, 0.5)
    assert got.u_references == pytest.approx(math.sqrt((0.5 * 0.03) ** 2 + (0.5 * 0.04) ** 2))  # 0.025
    assert got.u_fit == 0.0  # two references, two parameters: lack of fit not estimable
    assert got.u_repeatability == pytest.approx(0.2 / math.sqrt(3))
    assert got.uncertainty == pytest.approx(math.sqrt(0.025**2 + 0.2**2 / 3))  # 0.11815
    assert got.scale == "WMO-CO2-X2019"


def test_three_references_lack_of_fit_hand_computed():
    c = ReferenceStandard("REF-C", 460.0, 0.05, "WMO-CO2-X2019")
    # readings 379, 420, 459: the line through them misses each reference
    got = assign_species("co2", [A, B, c], [[379.0, 420.0, 459.0]], [420.0])
    fit = fit_species([379.0, 420.0, 459.0], [380.0, 420.0, 460.0])
    assert got.value == pytest.approx(fit.intercept + fit.slope * 420.0)
    x = np.array([379.0, 420.0, 459.0])
    xbar, sxx = x.mean(), np.sum((x - x.mean()) ** 2)
    s2 = sum(r**2 for r in fit.residuals) / (3 - 2)
    assert got.u_fit == pytest.approx(math.sqrt(s2 * (1 / 3 + (420.0 - xbar) ** 2 / sxx)))
    w = prediction_weights(x, 420.0)
    assert w.sum() == pytest.approx(1.0)
    assert got.u_references == pytest.approx(math.sqrt(sum((wi * u) ** 2 for wi, u in zip(w, [0.03, 0.04, 0.05]))))
    assert got.u_repeatability == 0.0


def test_bracketing_interpolates_the_references_to_the_candidate_time():
    # the analyzer drifts +0.1 ppm per injection slot; refs at t=0, 2, 4, candidate at 1 and 3
    inj = [("REF-A", 0, {"co2": 379.0}), ("REF-B", 0.5, {"co2": 419.0}), ("NEW", 1, {"co2": 399.1}),
           ("REF-A", 2, {"co2": 379.2}), ("REF-B", 2.5, {"co2": 419.2}), ("NEW", 3, {"co2": 399.3}),
           ("REF-A", 4, {"co2": 379.4}), ("REF-B", 4.5, {"co2": 419.4})]
    res = value_assignment("NEW", inj, {"REF-A": {"co2": A}, "REF-B": {"co2": B}})
    # at t=1: A reads 379.1, B 419.05 -> line through them, candidate 399.1
    s = res.species["co2"]
    a1 = 380 + (399.1 - 379.1) * 40 / (419.05 - 379.1)
    a2 = 380 + (399.3 - 379.3) * 40 / (419.25 - 379.3)
    assert s.cycle_values == pytest.approx((a1, a2))
    assert res.chain[0]["id"] == "REF-A" and res.chain[0]["chain"] == [{"id": "NOAA-1"}]
    assert res.chain[1]["scale"] == {"co2": "WMO-CO2-X2019"}


def test_mixed_scales_and_missing_references_are_refused():
    old = ReferenceStandard("REF-B", 420.0, 0.04, "WMO-CO2-X2007")
    with pytest.raises(ValueError, match="different scales"):
        assign_species("co2", [A, old], [[379.0, 419.0]], [399.0])
    with pytest.raises(ValueError, match=r"never measured"):
        value_assignment("NEW", [("REF-A", 0, {"co2": 1.0}), ("NEW", 1, {"co2": 2.0})],
                         {"REF-A": {"co2": A}, "REF-B": {"co2": B}})
