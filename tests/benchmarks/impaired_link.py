"""Benchmark: what one TCP connection carries over the impaired link of tests/station_agent/
test_real_link.py (two network namespaces, a veth pair, a tbf pipe, random nftables drops, the
delaying relay on the station's side), station to central, with each impairment added in turn.

A sink in the central namespace counts what arrives for `--seconds` from its first byte, then
closes; a source in the station namespace writes as fast as TCP lets it until then. The rate is
the sink's (what the buffers on the way hold does not count). Needs root (as the test does).

    .venv/bin/python tests/benchmarks/impaired_link.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.netns import CELLULAR, Link  # noqa: E402
from support.relay import Relay  # noqa: E402

SINK = """
import json, socket, sys, time
srv = socket.create_server((sys.argv[1], 0))
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
n, first, last, window = 0, None, None, float(sys.argv[2])
while data := conn.recv(65536):
    last = time.monotonic()
    first = first or last
    n += len(data)
    if last - first >= window:
        break
conn.close()
print(json.dumps({"bytes": n, "seconds": (last - first) if first else 0.0}), flush=True)
"""

SOURCE = """
import socket, sys, time
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
chunk = b"x" * 16384
try:
    while True:
        sock.sendall(chunk)
except OSError:  # the sink has had enough
    pass
"""


def measure(link: Link, seconds: float, via_relay_delay_ms: float | None) -> dict:
    sink = subprocess.Popen([*link.central.prefix, sys.executable, "-c", SINK, link.central.address, str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    relay = None
    try:
        port = int(sink.stdout.readline())
        host, dest_port = link.central.address, port
        if via_relay_delay_ms is not None:
            relay = Relay(link.station.prefix, (link.central.address, port), via_relay_delay_ms)
            host, dest_port = relay.address
        subprocess.run([*link.station.prefix, sys.executable, "-c", SOURCE, host, str(dest_port)],
                       check=True, timeout=seconds + 120)
        result = json.loads(sink.stdout.readline())
    finally:
        if relay is not None:
            relay.stop()
        sink.kill()
        sink.wait()
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    steps = [
        ("veth only", {}),
        (f"tbf {CELLULAR.rate_kbit} kbit/s", {"rate": True}),
        (f"+ {CELLULAR.loss_percent} % drops each way", {"rate": True, "loss": True}),
        (f"+ relay {CELLULAR.delay_ms:g} ms each way", {"rate": True, "loss": True, "relay": True}),
    ]
    for name, what in steps:
        link = Link().create()
        try:
            if what.get("rate"):
                link.shape(CELLULAR.rate_kbit)
            if what.get("loss"):
                link.drop_randomly(CELLULAR.loss_percent)
            r = measure(link, args.seconds, CELLULAR.delay_ms if what.get("relay") else None)
            packets = link.packets() if what.get("loss") else {}
        finally:
            link.close()
        rate = r["bytes"] / r["seconds"] if r["seconds"] else 0.0
        arrived, dropped = (sum(p[i] for p in packets.values()) for i in (0, 1))
        print(f"{name:<32} {rate / 1000:8.1f} kB/s  ({r['bytes']} bytes in {r['seconds']:.1f} s"
              + (f"; {dropped} of {arrived} packets dropped" if packets else "") + ")", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
