"""The config fields several drivers share are checked the same way in every driver that has them:
`water_correction` (drivers.water.water_correction_field) refuses a species ghgnet does not
calibrate, a time-zone field (drivers.base.TimeZoneName) a name that is not an IANA zone."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError, create_model

from drivers.base import TimeZoneName
from drivers.generic.line import TimestampMap
from drivers.reading import SPECIES
from drivers.registry import all_drivers

DRIVERS = all_drivers()
WITH_WATER = sorted(n for n, cls in DRIVERS.items() if "water_correction" in cls.Config.model_fields)
ZONE_FIELDS = sorted((n, f) for n, cls in DRIVERS.items() for f in cls.Config.model_fields if f.endswith("timezone"))


def probe(cls, name):
    """A model with just that field of `cls`, as the driver declares it."""
    info = cls.model_fields[name]
    return create_model("Probe", **{name: (info.annotation, info)})


def test_the_drivers_that_report_wet_values_have_the_field():
    assert {"picarro.g2401", "lgr.ugga", "licor.li850", "vaisala.gmp343", "generic.line"} <= set(WITH_WATER)


@pytest.mark.parametrize("name", WITH_WATER)
def test_water_correction_refuses_an_unknown_species_in_every_driver(name):
    model = probe(DRIVERS[name].Config, "water_correction")
    assert model(water_correction={"co2": (-0.01, 0.0)}).water_correction == {"co2": (-0.01, 0.0)}
    with pytest.raises(ValidationError, match=re.escape(f"unknown species ['xe']; known: {list(SPECIES)}")):
        model(water_correction={"co2": (-0.01, 0.0), "xe": (0.1, 0.0)})


@pytest.mark.parametrize(("cls", "field"), [*((DRIVERS[n].Config, f) for n, f in ZONE_FIELDS), (TimestampMap, "zone")])
def test_every_time_zone_field_takes_iana_names_only(cls, field):
    assert cls.model_fields[field].metadata == list(TimeZoneName.__metadata__)
    model = probe(cls, field)
    assert getattr(model(**{field: "Europe/Zurich"}), field) == "Europe/Zurich"
    with pytest.raises(ValidationError, match=r"unknown time zone 'Mars/Olympus' \(use an IANA name such as UTC\)"):
        model(**{field: "Mars/Olympus"})
