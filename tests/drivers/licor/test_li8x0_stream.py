"""The LI-850 in stream mode over a real TCP socket, against a stream that never pauses.

A poll must return what has arrived while the analyzer keeps sending: a stream faster than the
reply timeout never gives the reader a timeout to stop on (the poll used to read on until
10,000 lines, and the station stored nothing from the analyzer and could not stop).
"""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime

from drivers.base import transport_for
from drivers.licor.li8x0 import LI850

LINE = (b"<li850><data><celltemp>5.1250000e1</celltemp><cellpres>9.7100000e1</cellpres>"
        b"<co2>4.2013000e2</co2><h2o>1.2000000e1</h2o><ivolt>2.4000000e1</ivolt></data></li850>\n")
LINES = 5000  # the stream ends after this many lines (well after the poll)


class Streamer:
    """A TCP analyzer that acknowledges the outrate command, then sends LINE every millisecond."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.sent = 0
        self.streaming = threading.Event()
        self.done = threading.Event()
        self.quit = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.server.getsockname()[1]}"

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.makefile("rb").readline()  # the outrate command
            conn.sendall(b"<li850><ack>true</ack></li850>\n")
            self.streaming.set()
            while self.sent < LINES and not self.quit.wait(0.001):
                conn.sendall(LINE)
                self.sent += 1
            self.done.set()
            self.quit.wait(10)


def test_a_poll_returns_what_arrived_while_the_stream_goes_on():
    sim = Streamer()
    config = LI850.Config.model_validate({"id": "li850-1", "driver": "licor.li850", "url": sim.url,
                                          "mode": "stream", "outrate_s": 1, "timeout_s": 2})
    drv = LI850(config, transport_for(config))
    drv.now = lambda: datetime(2026, 3, 1, tzinfo=UTC)
    try:
        drv.open()
        assert sim.streaming.wait(5)
        while sim.sent < 100:
            sim.quit.wait(0.01)
        result = drv.poll()
        sent, ended = sim.sent, sim.done.is_set()
        assert not ended, "the poll returned only after the stream had ended"
        assert 100 <= len(result.readings) <= sent
        assert result.problems == []
        while sim.sent < sent + 20:
            sim.quit.wait(0.01)
        later = drv.poll()  # the next poll continues where this one stopped (a cut line completed)
        assert later.problems == [] and later.readings
    finally:
        sim.quit.set()
        drv.close()
        sim.server.close()
