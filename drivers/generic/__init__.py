"""Analyzers described in configuration rather than code."""
