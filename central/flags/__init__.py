"""Operators' manual flags: add, list, remove (audited), applied to the hourly aggregates and
exports (central/flags/manual.py); the letters and reason codes (central/flags/reasons.py)."""
