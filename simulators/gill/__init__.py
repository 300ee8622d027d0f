"""Simulated Gill sonic anemometers."""
