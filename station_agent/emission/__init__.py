"""A stack CEMS station (issue 18): the `[cems]` profile, minute inputs from the polled devices, and
the worker that turns them into emission minutes and hours (the pure chain is
station_agent/processing/cems/)."""
