"""ghgnet station agent: the daemon that runs a greenhouse-gas monitoring station."""
