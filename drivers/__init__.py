"""Instrument drivers, one module per model, grouped by maker (drivers/picarro/g2401.py ...), and
the kit they stand on: `base` (Driver, DeviceConfig), `reading`, `transport`, `registry` and
`testing` (the expected_protocol kit). Imports only ghgnet/.

Drivers translate between the wire and `Reading`s; they never sleep, schedule or decide.
They register through the entry-point group ``ghgnet.drivers`` (see drivers.registry).
"""
