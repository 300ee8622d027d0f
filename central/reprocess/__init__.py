"""Reprocessing at central: a station's period calibrated again with revised cylinder values,
written as a new version of its minutes and hours (central/store/levels.py)."""

from .cylinders import CylinderFileError, RevisedValue, load_revised_values
from .period import ReprocessSummary, minute_inputs, processing_version, reprocess_period

__all__ = ["CylinderFileError", "ReprocessSummary", "RevisedValue", "load_revised_values", "minute_inputs",
           "processing_version", "reprocess_period"]
