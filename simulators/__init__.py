"""Simulated instruments that speak the real wire protocols; mirrors drivers/."""
