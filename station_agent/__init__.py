"""ghgnet station agent: the daemon that runs a greenhouse-gas monitoring station."""

__version__ = "0.1.0"
