"""Simulated Modbus devices: real pymodbus servers serving a register map."""
