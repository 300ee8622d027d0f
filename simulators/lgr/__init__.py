"""Simulated ABB / Los Gatos Research analyzers (the RS-232 record stream)."""
