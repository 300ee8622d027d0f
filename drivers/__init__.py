"""Instrument drivers, one module per model, grouped by maker (drivers/picarro/g2401.py ...), and
the kit they stand on: `base` (Driver, DeviceConfig), `reading`, `transport`, `registry` and
`testing` (expected_protocol and check_driver_conventions). Imports only ghgnet/.

Drivers translate between the wire and `Reading`s; they never sleep, schedule or decide.
They register through the entry-point group ``ghgnet.drivers``, their bench simulators through
``ghgnet.simulators`` (see drivers.registry), exactly as a third party's package does.
"""
