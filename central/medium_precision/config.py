"""`[[medium_precision]]` in central's config: which medium-precision sensor to calibrate against
which high-precision reference, and how (central/medium_precision/)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from ghgnet.config import StrictModel

Term = Literal["temperature", "humidity", "pressure", "drift"]
Quantity = Literal["temperature", "humidity", "pressure"]
SOURCE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}:[A-Za-z0-9_]{1,64}$"


class MediumPrecisionSite(StrictModel):
    """One medium-precision sensor and its reference."""

    site: str = Field(min_length=1, description="station id of the medium-precision site")
    device: str = Field(min_length=1, description="the sensor's device id at that station")
    species: str = Field(default="co2", description="the species corrected (co2 ppm)")
    reference: str = Field(min_length=1, description="station id of the high-precision reference")
    reference_device: str | None = Field(
        default=None, description="the reference analyzer's device id; unset: every device of the reference "
        "station that measures the species (their minutes averaged)")
    mode: Literal["co-located", "background"] = Field(
        default="co-located",
        description="co-located: the reference samples the same air, every hour pairs; background: a "
        "background station of the network, only well-mixed afternoon hours pair")
    environment: dict[Quantity, str] = Field(
        default_factory=dict,
        description='where the site\'s temperature (degC), humidity (%RH) and pressure (hPa) come from: '
        '"device:quantity", a minute diagnostic of a device of the site, e.g. "met-1:temperature"')
    terms: list[Term] = Field(default_factory=lambda: ["temperature", "humidity", "pressure", "drift"],
                              description="the corrections fitted besides offset and gain")
    fit_gain: bool = Field(default=True, description="fit the gain (false: held at 1, e.g. in background mode)")
    min_minutes_per_hour: int = Field(default=40, ge=1, le=60, description="fewer valid minutes: no hour")
    well_mixed_hours: tuple[int, int] | None = Field(
        default=None, description="background mode: local hours [start, end) in the site's timezone "
        "([stations.<site>] timezone); unset: [aggregate] afternoon_start_h, afternoon_end_h")
    report_period: Literal["day", "week", "month"] = Field(default="day", description="residuals reported per")
    refit_every_h: float | None = Field(
        default=None, gt=0, description="the receiver refits the model this often (e.g. 24: daily), over the "
        "last `refit_window_days` of whole hours, in a thread of its own; unset: only `medium-precision calibrate`")
    refit_window_days: float = Field(default=30.0, gt=0, le=3660, description="the scheduled refit's window, days")

    @model_validator(mode="after")
    def _sources(self) -> "MediumPrecisionSite":
        bad = {q: s for q, s in self.environment.items() if not re.match(SOURCE, s)}
        if bad:
            raise ValueError(f"environment source(s) {bad} are not \"device:quantity\"")
        missing = [t for t in self.terms if t != "drift" and t not in self.environment]
        if missing:
            raise ValueError(f"term(s) {missing} need an environment source (environment.{missing[0]})")
        if self.well_mixed_hours is not None:
            a, b = self.well_mixed_hours
            if not (0 <= a < b <= 24):
                raise ValueError("well_mixed_hours must be [start, end) local hours with 0 <= start < end <= 24")
        if self.site == self.reference and self.reference_device in (None, self.device):
            raise ValueError("the reference is the sensor itself: name a reference_device of the site")
        return self
