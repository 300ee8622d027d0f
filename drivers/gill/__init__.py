"""Gill Instruments sonic anemometers."""
