"""Sequencing: the [sampling] config, plans, the engine that owns the valve, the stream timeline."""
