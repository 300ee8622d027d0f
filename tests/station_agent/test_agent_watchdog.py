"""The agent and systemd's watchdog, over a real NOTIFY_SOCKET datagram socket: READY, then
WATCHDOG pings while the analyzer is read, and no pings while acquisition hangs."""

from __future__ import annotations

import io
import socket
import time

from test_acquisition import bench_config, station_config

from ghgnet.clock import ScaledClock
from ghgnet.logs import configure_logging
from ghgnet.sdnotify import SdNotifier
from simulators.bench import Bench
from station_agent.agent import Agent


def receive_until(sock: socket.socket, predicate, timeout: float) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if predicate(got):
            break
    return got


def test_watchdog_pings_stop_while_acquisition_hangs(tmp_path):
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    clock = ScaledClock(speed=60)
    bench = Bench(bench_config(), clock).start(control=False)
    configure_logging("test-tower", fmt="json", stream=io.StringIO())
    # A poll waits up to an hour for its reply: a hung driver, as far as the watchdog can tell.
    cfg = station_config(tmp_path, bench.tcp["picarro-1"].url, timeout_s=3600)
    notifier = SdNotifier(address=path, environ={"WATCHDOG_USEC": "1000000"})
    agent = Agent(cfg, clock, notifier)
    agent.start()
    try:
        got = receive_until(listener, lambda g: any("READY=1" in m for m in g), 10)
        assert any("READY=1" in m for m in got)
        got = receive_until(listener, lambda g: sum("WATCHDOG=1" in m for m in g) >= 3, 10)
        assert sum("WATCHDOG=1" in m for m in got) >= 3

        bench.devices["picarro-1"].inject("drop", count=1)  # the next command is never answered
        # The poller is stuck in its read; after the allowance (300 s simulated = 5 s real) the
        # watchdog says which probe stalled and stops pinging.
        got = receive_until(listener, lambda g: any("STATUS=watchdog not fed" in m for m in g), 20)
        stall = [m for m in got if "STATUS=watchdog not fed" in m]
        assert stall and "acquisition:picarro-1" in stall[0]
        quiet = receive_until(listener, lambda g: any("WATCHDOG=1" in m for m in g), 3)
        assert not any("WATCHDOG=1" in m for m in quiet)
        assert {s.name: s.stalled for s in agent.watchdog.states()}["acquisition:picarro-1"]
    finally:
        bench.tcp["picarro-1"].drop_clients()  # unblocks the hung read
        agent.shutdown()
        bench.stop()
        listener.close()


def test_metrics_endpoint_serves_the_agent_figures(tmp_path):
    import urllib.request

    clock = ScaledClock(speed=60)
    bench = Bench(bench_config(), clock).start(control=False)
    configure_logging("test-tower", fmt="json", stream=io.StringIO())
    cfg = station_config(tmp_path, bench.tcp["picarro-1"].url)
    cfg = cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"enabled": True, "port": 0})})
    agent = Agent(cfg, clock)
    agent.start()
    try:
        deadline = time.monotonic() + 20
        while agent.pollers["picarro-1"].health.readings < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        text = urllib.request.urlopen(agent.metrics.url, timeout=10).read().decode()
    finally:
        agent.shutdown()
        bench.stop()
    lines = {line.split(" ")[0]: line.split(" ")[1] for line in text.splitlines() if not line.startswith("#")}
    assert float(lines['ghgnet_readings_total{device="picarro-1"}']) >= 10
    assert float(lines['ghgnet_device_connected{device="picarro-1"}']) == 1
    assert float(lines["ghgnet_data_disk_free_bytes"]) > 0
    assert "ghgnet_outbox_backlog_records" in lines
