"""VICI (Valco) valve actuators."""
