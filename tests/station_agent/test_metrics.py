"""The metrics endpoint (prometheus_client) over real HTTP, its text parsed back line by line."""

from __future__ import annotations

import http.client
import re
import socket
import urllib.error
import urllib.request

import pytest

from ghgnet.logs import get_logger
from station_agent.service.metrics import (
    CONTENT_TYPE,
    STATION_FAMILIES,
    Family,
    MetricsServer,
    disk_free_bytes,
    render,
)

LOG = get_logger(test="metrics")

# Text format 0.0.4: metric name, optional {label="value",...}, value.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def escape_label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def unescape(text: str) -> str:
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], text)


def parse(text: str) -> tuple[dict[str, dict[str, str]], dict[tuple[str, tuple], float]]:
    """Families {name: {"help", "type"}} and samples {(name, labels): value}; strict about order."""
    families: dict[str, dict[str, str]] = {}
    samples: dict[tuple[str, tuple], float] = {}
    current = None
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, help_text = line[7:].split(" ", 1)
            assert name not in families, f"family {name} declared twice"
            families[name] = {"help": unescape(help_text)}
            current = name
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert name == current, "TYPE must follow its HELP"
            assert kind in ("gauge", "counter")
            families[name]["type"] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, _, labels, value = m.groups()
            assert name == current, f"sample {name} outside its family"
            pairs = tuple((k, unescape(v)) for k, v in LABEL.findall(labels or ""))
            if labels:
                assert ",".join(f'{k}="{escape_label_value(v)}"' for k, v in pairs) == labels
            samples[(name, pairs)] = float(value)
    return families, samples


FIGURES = {
    "queue_depth": 3,
    "outbox_backlog": 1250,
    "oldest_unacked_age_s": 431.5,
    "disk_free_bytes": 52_000_000_000,
    "last_calibration_age_s": None,  # no calibration yet: no sample
    "minutes_stored": 1440,
    "poll_errors": {"picarro-1": 2, 'odd "id"\\with\nnewline': 7},
    "readings": {"picarro-1": 43200, "vici-1": 0},
    "device_connected": {"picarro-1": True, "vici-1": False},
    "clock_offset_s": {"picarro-1": -0.25, "vici-1": None},  # the valve has no clock
    "watchdog_stalled": {"acquisition:picarro-1": False},
}


@pytest.fixture
def server():
    calls = {"n": 0, "fail": False}

    def figures():
        calls["n"] += 1
        if calls["fail"]:
            raise RuntimeError("store closed")
        return FIGURES

    srv = MetricsServer(figures, LOG, port=0)
    srv.start()
    yield srv, calls
    srv.stop()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_scrape_over_http_parses_back_to_the_figures(server):
    srv, calls = server
    assert srv.host == "127.0.0.1" and srv.port > 0
    status, ctype, body = get(srv.url)
    assert status == 200 and ctype == CONTENT_TYPE and calls["n"] == 1
    families, samples = parse(body)

    assert set(families) == {f.name for f in STATION_FAMILIES}
    for f in STATION_FAMILIES:
        assert families[f.name]["type"] == f.kind
        assert (f.kind == "counter") == f.name.endswith("_total")
    assert samples[("ghgnet_writer_queue_depth", ())] == 3
    assert samples[("ghgnet_outbox_backlog_records", ())] == 1250
    assert samples[("ghgnet_outbox_oldest_unacked_age_seconds", ())] == 431.5
    assert samples[("ghgnet_data_disk_free_bytes", ())] == 52_000_000_000
    assert samples[("ghgnet_minutes_stored_total", ())] == 1440
    assert not any(name == "ghgnet_last_calibration_age_seconds" for name, _ in samples)
    assert samples[("ghgnet_poll_errors_total", (("device", "picarro-1"),))] == 2
    assert samples[("ghgnet_poll_errors_total", (("device", 'odd "id"\\with\nnewline'),))] == 7
    assert samples[("ghgnet_readings_total", (("device", "vici-1"),))] == 0
    assert samples[("ghgnet_device_connected", (("device", "picarro-1"),))] == 1
    assert samples[("ghgnet_device_connected", (("device", "vici-1"),))] == 0
    assert samples[("ghgnet_clock_offset_seconds", (("device", "picarro-1"),))] == -0.25
    assert ("ghgnet_clock_offset_seconds", (("device", "vici-1"),)) not in samples
    assert samples[("ghgnet_watchdog_stalled", (("probe", "acquisition:picarro-1"),))] == 0
    assert len(samples) == 13  # 5 plain + 8 labelled; None values write no sample


def test_each_scrape_reads_the_figures_afresh_and_head_sends_no_body(server):
    srv, calls = server
    get(srv.url)
    get(srv.url)
    assert calls["n"] == 2
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
    conn.request("HEAD", "/metrics")
    resp = conn.getresponse()
    assert resp.status == 200 and int(resp.headers["Content-Length"]) > 0 and resp.read() == b""
    conn.close()


def test_other_paths_are_404_and_a_failing_figures_call_is_a_500_not_a_dead_server(server):
    srv, calls = server
    status, _, body = get(f"http://{srv.host}:{srv.port}/")
    assert status == 404 and "/metrics" in body
    calls["fail"] = True
    status, _, body = get(srv.url)
    assert status == 500 and "store closed" in body
    calls["fail"] = False
    status, _, _ = get(srv.url)
    assert status == 200


def test_stop_closes_the_port():
    srv = MetricsServer(dict, LOG, port=0)
    srv.start()
    port = srv.port
    assert get(srv.url)[0] == 200
    srv.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_values_parse_back_exactly():
    figures = {"queue_depth": True, "outbox_backlog": 12, "oldest_unacked_age_s": 0.1, "disk_free_bytes": 1e20,
               "last_calibration_age_s": float("nan"), "minutes_stored": 2**40,
               "clock_offset_s": {"a": float("inf"), "b": float("-inf")}}
    _, samples = parse(render(figures))
    assert samples[("ghgnet_writer_queue_depth", ())] == 1
    assert samples[("ghgnet_outbox_backlog_records", ())] == 12
    assert samples[("ghgnet_outbox_oldest_unacked_age_seconds", ())] == 0.1
    assert samples[("ghgnet_data_disk_free_bytes", ())] == 1e20
    assert samples[("ghgnet_minutes_stored_total", ())] == 2**40
    assert samples[("ghgnet_last_calibration_age_seconds", ())] != samples[("ghgnet_last_calibration_age_seconds", ())]
    assert samples[("ghgnet_clock_offset_seconds", (("device", "a"),))] == float("inf")
    assert samples[("ghgnet_clock_offset_seconds", (("device", "b"),))] == float("-inf")


def test_help_text_escapes_backslash_and_newline():
    fam = Family("x", "ghgnet_x", "gauge", "a \\ b\nc")
    assert render({"x": 1}, (fam,)) == "# HELP ghgnet_x a \\\\ b\\nc\n# TYPE ghgnet_x gauge\nghgnet_x 1.0\n"


def test_a_counter_must_be_named_total_and_a_labelled_figure_must_be_a_dict():
    with pytest.raises(ValueError):
        Family("x", "ghgnet_x", "counter", "no _total")
    with pytest.raises(TypeError):
        render({"readings": 5})


def test_the_station_registry_holds_the_figures_alone(server):
    """A registry of its own: none of prometheus_client's default process, platform or GC collectors
    (their work at every scrape is not the daemon's business), and OpenMetrics when the scraper asks."""
    srv, _ = server
    _, _, body = get(srv.url)
    families, _ = parse(body)
    assert all(name.startswith("ghgnet_") for name in families)
    req = urllib.request.Request(srv.url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        text = resp.read().decode()
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n") and "ghgnet_minutes_stored_total 1440.0" in text
    assert "process_" not in text and "python_gc" not in text


def test_disk_free_bytes_of_a_data_path_not_yet_created(tmp_path):
    free = disk_free_bytes(tmp_path / "not" / "yet" / "station.sqlite")
    assert free > 0
