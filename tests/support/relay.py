"""A TCP relay that delays every byte by a fixed time each way: the latency of a cellular link,
on a kernel without netem (see support/netns.py).

    python relay.py --listen 127.0.0.1:0 --to 10.213.0.2:1883 --delay-ms 150

Prints one JSON line when it listens ({"listen": "127.0.0.1:PORT"}), then logs one JSON line per
connection event on stderr: "opened", "upstream_failed" (the far end unreachable: the client's
connection is closed at once, as a dead link would), "closed" with the bytes carried each way.
When either side of a relayed connection ends or fails, the other is closed too, so a broken link
reaches the client. Each direction holds at most `--buffer-bytes` in flight inside the relay;
beyond that it stops reading and TCP pushes back on the sender.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def log(event: str, **fields) -> None:
    print(json.dumps({"t": round(time.time(), 3), "event": event, **fields}), file=sys.stderr, flush=True)


def split_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


class DelayedPipe:
    """One direction: bytes read at time t are written at t + delay, in order, with at most
    `buffer_bytes` read and not yet written."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float,
                 buffer_bytes: int) -> None:
        self.reader, self.writer, self.delay_s, self.buffer_bytes = reader, writer, delay_s, buffer_bytes
        self.queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        self.held = 0
        self.room = asyncio.Event()
        self.carried = 0
        self.ended = ""

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await self.reader.read(65536):
                self.queue.put_nowait((loop.time() + self.delay_s, data))
                self.held += len(data)
                while self.held >= self.buffer_bytes:
                    self.room.clear()
                    await self.room.wait()
            self.ended = "eof"
        except OSError as exc:
            self.ended = repr(exc)
        finally:
            self.queue.put_nowait(None)  # what was read still goes out, then this direction ends

    async def write(self) -> None:
        loop = asyncio.get_running_loop()
        while (item := await self.queue.get()) is not None:
            due, data = item
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.writer.write(data)
            await self.writer.drain()
            self.carried += len(data)
            self.held -= len(data)
            self.room.set()


async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                target: tuple[str, int], delay_s: float, buffer_bytes: int, conn_id: int) -> None:
    peer = client_writer.get_extra_info("peername")
    try:
        up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*target), timeout=10)
    except (OSError, asyncio.TimeoutError) as exc:
        log("upstream_failed", id=conn_id, client=str(peer), error=repr(exc))
        client_writer.close()
        return
    log("opened", id=conn_id, client=str(peer))
    up = DelayedPipe(client_reader, up_writer, delay_s, buffer_bytes)
    down = DelayedPipe(up_reader, client_writer, delay_s, buffer_bytes)
    readers = [asyncio.ensure_future(p.read()) for p in (up, down)]
    writers = {asyncio.ensure_future(p.write()): p for p in (up, down)}
    # A direction is over once what it read is written (or writing failed); whichever side ends
    # first (EOF or an error), the connection is over for both.
    done, _ = await asyncio.wait(writers, return_when=asyncio.FIRST_COMPLETED)
    first = done.pop()
    side = "client->server" if writers[first] is up else "server->client"
    reason = f"{side}: " + (repr(first.exception()) if first.exception() else writers[first].ended)
    for t in (*readers, *writers):
        t.cancel()
    for w in (client_writer, up_writer):
        w.close()
    await asyncio.gather(*readers, *writers, return_exceptions=True)
    log("closed", id=conn_id, reason=reason, up_bytes=up.carried, down_bytes=down.carried)


async def serve(listen: tuple[str, int], target: tuple[str, int], delay_s: float, buffer_bytes: int,
                announce: Callable[[str], None]) -> None:
    ids = itertools.count(1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn_id = next(ids)
        try:
            await relay(reader, writer, target, delay_s, buffer_bytes, conn_id)
        except asyncio.CancelledError:  # the relay stops: its connections end with it
            writer.close()
            log("closed", id=conn_id, reason="relay stopped")

    server = await asyncio.start_server(handle, *listen)
    host, port = server.sockets[0].getsockname()[:2]
    announce(json.dumps({"listen": f"{host}:{port}", "to": f"{target[0]}:{target[1]}", "delay_ms": delay_s * 1000}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=split_address, required=True, help="HOST:PORT (port 0: any free one)")
    parser.add_argument("--to", type=split_address, required=True, help="HOST:PORT to relay to")
    parser.add_argument("--delay-ms", type=float, required=True, help="added to each direction")
    parser.add_argument("--buffer-bytes", type=int, default=64 * 1024, help="in flight per direction")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.listen, args.to, args.delay_ms / 1000.0, args.buffer_bytes,
                      lambda line: print(line, flush=True)))
    return 0


class Relay:
    """This relay as a process (started through `prefix`, e.g. inside a network namespace),
    logging its connection events to `log_path` (None: nowhere)."""

    def __init__(self, prefix: Sequence[str], target: tuple[str, int], delay_ms: float,
                 log_path: Path | None = None) -> None:
        self.log_path = log_path
        with open(log_path or os.devnull, "ab") as log:
            self.proc = subprocess.Popen(
                [*prefix, sys.executable, str(Path(__file__).resolve()), "--listen", "127.0.0.1:0",
                 "--to", f"{target[0]}:{target[1]}", "--delay-ms", repr(delay_ms)],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            raise RuntimeError(f"the relay did not start (exit {self.proc.returncode}); see {log_path}")
        self.address = split_address(json.loads(line)["listen"])

    def events(self) -> list[dict]:
        """The connection events logged so far."""
        if self.log_path is None:
            return []
        return [json.loads(ln) for ln in self.log_path.read_text().splitlines() if ln.startswith("{")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
