"""Simulated gas chromatographs that export result files."""
