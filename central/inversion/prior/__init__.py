"""`central-receiver prior build`: the inversion's prior from a city's inventory files.

config.py (the TOML), sources.py (point CSV, proxies, gridded inventories -> annual mass per cell),
profiles.py (month/weekday/hour factors -> each hour's share of the year), build.py (assemble,
write prior.nc, the command).
"""
