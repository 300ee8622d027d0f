"""Fleet management at the station: central's signed configs, verified, applied, health-checked
and rolled back (remote_config, config_history, supervisor)."""
