"""HJ 212 at central: a TCP listener for existing data loggers (`[hj212]` in central's config).

`config` (the `[hj212]` table), `records` (packet -> stored batch, pure), `listener` (the asyncio
server; import it explicitly: `from central.hj212.listener import Hj212Listener`).
"""
