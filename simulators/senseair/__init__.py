"""Simulated Senseair CO2 sensors (a real pymodbus server)."""
