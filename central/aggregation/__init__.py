"""Central's hourly aggregation: the statistics (hourly_stats) and the thread that recomputes dirty hours (worker)."""
