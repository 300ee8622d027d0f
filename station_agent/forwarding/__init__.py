"""Forwarding: the MQTT forwarder that sends the outbox to central."""
