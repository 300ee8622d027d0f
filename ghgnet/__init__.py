"""ghgnet's foundation: the wire contract, the MQTT link, the TOML config base, time, clock and
logging. Imports nothing else of the project; drivers/, simulators/, station_agent/ and central/
stand on it."""

__version__ = "0.1.0"
