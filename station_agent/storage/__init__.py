"""Storage: the station's SQLite store (all of its SQL), the writer thread, calibration results, CSV export."""
