"""Instrument performance test reports at central: an analyzer's forwarded minutes -> the
protocol's figures (ghgnet.processing.performance_test) -> `results.csv` and `report.html`."""
