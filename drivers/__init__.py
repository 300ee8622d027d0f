"""Instrument drivers, one module per model, grouped by maker (drivers/picarro/g2401.py ...).

Drivers translate between the wire and `Reading`s; they never sleep, schedule or decide.
They register through the entry-point group ``ghgnet.drivers`` (see station_agent.registry).
"""
