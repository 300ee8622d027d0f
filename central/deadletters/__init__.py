"""Dead letters for operators: list them (reason, payload excerpt) and replay them through the
normal ingest path, idempotently (central/deadletters/replay.py)."""
