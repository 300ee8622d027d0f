"""Gas chromatographs, read from the result files their software exports (a file drop)."""
