"""The species registry: bundled values (DOMAIN.md section 2), registration rules."""

from __future__ import annotations

import pytest

from ghgnet import species
from ghgnet.species import Species


def test_bundled_species_carry_their_unit_goal_and_scale():
    assert [s.name for s in species.all_species()[:5]] == ["co2", "ch4", "co", "n2o", "h2o"]
    assert species.calibrated()[:4] == ("co2", "ch4", "co", "n2o")
    assert {k: species.goals()[k] for k in ("co2", "ch4", "co", "n2o")} == {"co2": 0.1, "ch4": 2.0, "co": 2.0, "n2o": 0.1}
    co2 = species.get("co2")
    assert (co2.unit, co2.molar_mass, co2.scale, co2.mole_fraction_scale) == ("ppm", 44.01, "WMO-CO2-X2019", 1e-6)
    assert species.get("h2o").goal is None and "h2o" not in species.calibrated()


def test_an_unknown_species_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown species 'xe'; known species: co2, ch4, co, n2o, h2o"):
        species.get("xe")


def test_registering_a_name_again_with_other_values_is_refused():
    species.register(species.get("ch4"))  # the same values again: harmless
    with pytest.raises(ValueError, match="'ch4' is already registered"):
        species.register(Species("ch4", "ppm", 16.04, goal=0.002))


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "CO2", "unit": "ppm", "molar_mass": 44.01}, "lower-case"),
    ({"name": "xe", "unit": "ppt", "molar_mass": 0.0}, "molar mass must be > 0"),
    ({"name": "xe", "unit": "ppt", "molar_mass": 131.29, "goal": -1.0}, "compatibility goal must be > 0"),
])
def test_a_malformed_species_is_refused_naming_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Species(**kwargs)
