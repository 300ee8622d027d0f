"""Simulated analyzers described by configuration."""
