"""Acquisition: one poller thread per analyzer (poll, tag, hand over to the writer)."""
