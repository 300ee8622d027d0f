"""Modbus devices: register maps, RTU and TCP, on pymodbus."""
