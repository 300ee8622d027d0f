"""Senseair low-cost NDIR CO2 sensors on Modbus RTU."""
