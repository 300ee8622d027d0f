"""Processing both sides run: pure numpy, arrays in, records out; no I/O, no clock, no logging.

The station turns its readings into minutes with it in near real time; central runs the same code
when it reprocesses a station's period from the archived raw readings, so both give one answer.

- `water`: wet -> dry mole fractions (Picarro water correction).
- `minute_record`: one analyzer's minute of samples -> a flagged `MinuteRecord`; applying a calibration.
- `calibration`: standards -> fits, target checks, interpolation in time, drift.
"""

from ghgnet.processing.calibration import (
    COMPATIBILITY_GOALS,
    DRIFT_LIMITS,
    REFERENCE_LEVELS,
    AssignedValue,
    CalibrationFit,
    CalibrationResult,
    DriftResult,
    InjectionMeans,
    StandardUsed,
    TargetResult,
    TargetSpecies,
    calibrate,
    calibration_drift,
    calibration_from_minutes,
    evaluate_target,
    fit_calibration,
    fit_species,
    injection_means,
    interpolated_coefficients,
    target_from_minutes,
)
from ghgnet.processing.minute_record import MinuteLimits, apply_calibration, check_quantities, minute_record
from ghgnet.processing.water import (
    G2401_FACTORY,
    LOW_H2O_BIAS_PERCENT,
    WaterCoefficients,
    dry_from_wet,
    in_low_h2o_bias_domain,
)

__all__ = [
    "COMPATIBILITY_GOALS",
    "DRIFT_LIMITS",
    "G2401_FACTORY",
    "LOW_H2O_BIAS_PERCENT",
    "REFERENCE_LEVELS",
    "AssignedValue",
    "CalibrationFit",
    "CalibrationResult",
    "DriftResult",
    "InjectionMeans",
    "MinuteLimits",
    "StandardUsed",
    "TargetResult",
    "TargetSpecies",
    "WaterCoefficients",
    "apply_calibration",
    "calibrate",
    "calibration_drift",
    "calibration_from_minutes",
    "check_quantities",
    "dry_from_wet",
    "evaluate_target",
    "fit_calibration",
    "fit_species",
    "in_low_h2o_bias_domain",
    "injection_means",
    "interpolated_coefficients",
    "minute_record",
    "target_from_minutes",
]
