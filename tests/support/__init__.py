"""Helpers shared by tests: real brokers, a real PostgreSQL database, an MQTT test station.

Import as `support.*` (pytest puts tests/ on sys.path through tests/conftest.py).
"""
