"""Service: the control socket, the metrics endpoint, systemd notify and the watchdog."""
