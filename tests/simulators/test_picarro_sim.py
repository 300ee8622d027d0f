"""The Picarro simulator on its own, then with the real driver over a real TCP socket and a real
pty, with faults injected; the bench config; and `station-sim run` as a real subprocess."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.base import transport_for
from drivers.picarro.g2401 import G2301, G2401
from drivers.transport import TransportError
from ghgnet.clock import ManualClock
from ghgnet.config import ConfigError
from simulators.bench import Bench, DiurnalGas, TrackedTcpServer
from simulators.config import load_bench_config
from simulators.picarro.g2401 import PicarroSimConfig, PicarroSimulator
from simulators.serve import Disconnect, PtyServer, TcpServer

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 1, tzinfo=UTC)
COLUMNS = ["CO2", "CO2_dry", "CH4", "CH4_dry", "CO", "H2O", "CavityPressure", "CavityTemp"]
FIELDS = {
    "CO2": "co2", "CO2_dry": "co2_dry", "CH4": "ch4", "CH4_dry": "ch4_dry", "CO": "co",
    "H2O": "h2o", "CavityPressure": "cavity_pressure", "CavityTemp": "cavity_temp",
}


def make_sim(clock: ManualClock, **overrides) -> PicarroSimulator:
    return PicarroSimulator(clock, PicarroSimConfig(**overrides))


def ask(sim: PicarroSimulator, command: str) -> list[str]:
    """Send one command as a serial client would and split the reply into lines."""
    reply = sim.receive(command.encode() + b"\r").decode("latin-1")
    return [line for line in reply.split("\r") if line]


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Real-time wait for something another thread does (a server noticing a client)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def in_ghgnet_units(values: dict[str, float]) -> dict[str, float]:
    factor = {"CH4": 1000.0, "CH4_dry": 1000.0, "CO": 1000.0}
    return {FIELDS[k]: v * factor.get(k, 1.0) for k, v in values.items()}


# ----------------------------------------------------------------------------- the simulator alone


def test_records_come_every_one_to_three_simulated_seconds():
    clock = ManualClock(START)
    sim = make_sim(clock, seed=3)
    clock.advance(600)
    times = [e.time for e in sim.ledger]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert 200 <= len(times) <= 600
    assert min(gaps) >= 1.0 and max(gaps) <= 3.0
    assert times[-1] <= clock.now()


def test_same_seed_same_records_other_seed_other_records():
    runs = []
    for seed in (7, 7, 8):
        clock = ManualClock(START)
        sim = make_sim(clock, seed=seed)
        clock.advance(60)
        runs.append(sim.ledger_rows())
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_fifo_keeps_512_drops_the_oldest_and_counts_drops_while_nobody_is_connected():
    clock = ManualClock(START)
    sim = make_sim(clock)
    clock.advance(2000)
    stats = sim.stats()
    assert stats["produced"] > 512
    assert stats["buffered"] == 512
    assert stats["overflow"] == stats["produced"] - 512 == stats["overflow_disconnected"]
    lines = ask(sim, "_Meas_GetBuffer")
    assert lines[0] == "512;" and len(lines) == 513
    oldest_kept = sim.ledger[stats["produced"] - 512]
    assert lines[1].startswith(oldest_kept.time.strftime("%y/%m/%d %H:%M:%S"))
    assert sim.stats()["delivered"] == 512


def test_wet_values_follow_the_water_correction_of_the_dry_ones():
    clock = ManualClock(START)
    sim = make_sim(clock)
    clock.advance(120)
    a, b = sim.config.water_correction["co2"]
    for entry in sim.ledger:
        h = entry.values["H2O"]
        # H2O goes out rounded to 0.001 %, which moves the computed wet CO2 by up to ~0.003 ppm
        assert entry.values["CO2"] == pytest.approx(entry.values["CO2_dry"] * (1 + a * h + b * h * h), abs=0.005)


def test_values_scatter_around_the_gas_by_the_configured_noise():
    clock = ManualClock(START)
    gas = DiurnalGas({"co2": 415.0, "ch4": 1950.0, "co": 120.0, "h2o": 0.8}, {})
    sim = PicarroSimulator(clock, PicarroSimConfig(seed=5), gas)
    clock.advance(1000)
    co2 = [e.values["CO2_dry"] for e in sim.ledger]
    ch4 = [e.values["CH4_dry"] * 1000 for e in sim.ledger]
    assert statistics.mean(co2) == pytest.approx(415.0, abs=0.02)
    assert 0.03 < statistics.stdev(co2) < 0.08
    assert statistics.mean(ch4) == pytest.approx(1950.0, abs=0.5)
    pressures = [e.values["CavityPressure"] for e in sim.ledger]
    assert all(139.9 < p < 140.1 for p in pressures)


def test_diurnal_gas_peaks_at_its_hour():
    gas = DiurnalGas({"co2": 420.0}, {"co2": 10.0}, peak_hour_utc=6.0)
    assert gas(datetime(2026, 3, 1, 6, tzinfo=UTC))["co2"] == pytest.approx(430.0)
    assert gas(datetime(2026, 3, 1, 18, tzinfo=UTC))["co2"] == pytest.approx(410.0)


def test_commands_are_case_insensitive_and_lf_is_ignored():
    clock = ManualClock(START)
    sim = make_sim(clock)
    assert sim.receive(b"_instr_getstatus\r\n") == b"963\r"
    assert sim.receive(b"\n_INSTR_GETSTATUS\r") == b"963\r"


def test_a_command_split_across_writes_is_answered_once_complete():
    sim = make_sim(ManualClock(START))
    assert sim.receive(b"_Instr_Get") == b""
    assert sim.receive(b"Status\r") == b"963\r"


def test_unknown_command_answers_err_code_tab_time():
    clock = ManualClock(START)
    sim = make_sim(clock)
    (line,) = ask(sim, "_Frobnicate")
    code, stamp = line.split("\t")
    assert code == "ERR:1001"
    assert stamp == "26/03/01 00:00:00.000"


def test_get_buffer_first_pops_one_and_answers_empty_once_per_label():
    clock = ManualClock(START)
    sim = make_sim(clock, columns=["CO2", "CH4"])
    clock.advance(4)
    produced = sim.stats()["produced"]
    for _ in range(produced):
        (line,) = ask(sim, "_Meas_GetBufferFirst")
        assert line.count(";") == 4
    empty = ask(sim, "_Meas_GetBufferFirst")
    assert len(empty) == 2 and all(x.startswith("ERR:3002\t") for x in empty)


def test_clear_buffer_answers_ok_and_the_ledger_says_cleared():
    clock = ManualClock(START)
    sim = make_sim(clock)
    clock.advance(30)
    n = sim.stats()["produced"]
    assert ask(sim, "_Meas_ClearBuffer") == ["OK"]
    assert ask(sim, "_Meas_GetBuffer") == ["0;"]
    assert sim.stats()["cleared"] == n


def test_get_conc_and_get_conc_ex_give_the_latest_values():
    clock = ManualClock(START)
    sim = make_sim(clock, columns=["CO2", "H2O"])
    clock.advance(10)
    latest = sim.ledger[-1]
    (conc,) = ask(sim, "_Meas_GetConc")
    assert conc == f"{latest.values['CO2']:.3f};{latest.values['H2O']:.3f}"
    (ex,) = ask(sim, "_Meas_GetConcEx")
    assert ex == latest.time.strftime("%y/%m/%d %H:%M:%S") + f".{latest.time.microsecond // 1000:03d};" + conc
    assert sim.stats()["buffered"] == len(sim.ledger)  # GetConc does not touch the buffer


def test_analyzer_clock_zone_shows_in_the_record_times():
    clock = ManualClock(START)
    sim = make_sim(clock, timezone="Asia/Shanghai", columns=["CO2"])
    clock.advance(5)
    lines = ask(sim, "_Meas_GetBuffer")
    assert lines[1].startswith("26/03/01 08:00:0")


def test_fault_error_status_reports_the_fault_word_for_its_count():
    sim = make_sim(ManualClock(START))
    sim.inject("error_status", count=2, word=16387)
    assert [ask(sim, "_Instr_GetStatus") for _ in range(3)] == [["16387"], ["16387"], ["963"]]


def test_fault_pressure_excursion_shifts_the_cavity_pressure_for_its_duration():
    clock = ManualClock(START)
    sim = make_sim(clock)
    sim.inject("pressure", duration_s=30, offset_torr=8.0)
    assert ask(sim, "_Instr_GetStatus") == [str(963 - 128)]
    clock.advance(60)
    inside = [e.values["CavityPressure"] for e in sim.ledger if (e.time - START).total_seconds() < 30]
    after = [e.values["CavityPressure"] for e in sim.ledger if (e.time - START).total_seconds() > 30]
    assert inside and all(p > 147 for p in inside)
    assert after and all(p < 141 for p in after)
    assert ask(sim, "_Instr_GetStatus") == ["963"]


def test_fault_drop_swallows_the_command_without_popping_records():
    clock = ManualClock(START)
    sim = make_sim(clock)
    clock.advance(20)
    sim.inject("drop")
    assert sim.receive(b"_Meas_GetBuffer\r") == b""
    assert sim.stats()["delivered"] == 0
    assert ask(sim, "_Meas_GetBuffer")[0] == f"{len(sim.ledger)};"


def test_fault_disconnect_raises_disconnect_then_serves_again():
    sim = make_sim(ManualClock(START))
    sim.inject("disconnect")
    with pytest.raises(Disconnect):
        sim.receive(b"_Instr_GetStatus\r")
    assert sim.receive(b"_Instr_GetStatus\r") == b"963\r"


def test_fault_garbage_puts_a_noise_line_before_the_reply():
    sim = make_sim(ManualClock(START))
    sim.inject("garbage", count=1)
    noise, reply, _ = sim.receive(b"_Instr_GetStatus\r").split(b"\r")
    assert noise.startswith(b"\xfe") and reply == b"963"


def test_unknown_fault_is_refused_with_the_known_ones():
    sim = make_sim(ManualClock(START))
    with pytest.raises(ValueError, match="garbage"):
        sim.inject("meteor")


# ----------------------------------------------------------------------------- driver over TCP


@contextmanager
def served_driver(
    clock: ManualClock, server_cls=TrackedTcpServer, timeout_s: float = 0.5, **sim_overrides
) -> Iterator[tuple[G2401, PicarroSimulator, TcpServer]]:
    sim = make_sim(clock, **sim_overrides)
    server = server_cls(sim).start()
    cfg = G2401.Config(id="picarro-1", url=server.url, timeout_s=timeout_s, columns=sim.config.columns)
    driver = G2401(cfg, transport_for(cfg))
    try:
        driver.open()
        yield driver, sim, server
    finally:
        driver.close()
        server.stop()


def assert_readings_match_ledger(readings, entries) -> None:
    assert [r.time for r in readings] == [e.time.replace(microsecond=e.time.microsecond // 1000 * 1000) for e in entries]
    for reading, entry in zip(readings, entries):
        assert reading.values == pytest.approx(in_ghgnet_units(entry.values))


def test_driver_reads_every_record_over_a_real_tcp_socket():
    clock = ManualClock(START)
    with served_driver(clock) as (driver, sim, _):
        readings = []
        for _ in range(5):
            clock.advance(17)
            result = driver.poll()
            assert result.problems == []
            readings += result.readings
        assert_readings_match_ledger(readings, sim.ledger)
        stats = sim.stats()
        assert stats["delivered"] == stats["produced"] == len(readings)
        assert all(r.status == 963 and r.status_ok for r in readings)


def test_driver_reads_the_newer_single_time_record_format_over_tcp():
    clock = ManualClock(START)
    with served_driver(clock, record_format="single_time") as (driver, sim, _):
        clock.advance(20)
        result = driver.poll()
        assert result.problems == []
        assert_readings_match_ledger(result.readings, sim.ledger)


def test_g2301_driver_reads_its_simulator_without_co():
    clock = ManualClock(START)
    columns = ["CO2", "CO2_dry", "CH4", "CH4_dry", "H2O"]
    sim = make_sim(clock, columns=columns)
    server = TcpServer(sim).start()
    cfg = G2301.Config(id="g2301", driver="picarro.g2301", url=server.url, columns=columns)
    driver = G2301(cfg, transport_for(cfg))
    try:
        driver.open()
        clock.advance(20)
        readings = driver.poll().readings
        assert readings and set(readings[0].values) == {"co2", "co2_dry", "ch4", "ch4_dry", "h2o"}
    finally:
        driver.close()
        server.stop()


def test_no_record_is_lost_through_garbage_drops_and_a_disconnect_over_tcp():
    """The engine's part (reopen after an error, poll again) is played by the test."""
    clock = ManualClock(START)
    with served_driver(clock, timeout_s=0.3) as (driver, sim, _):
        readings, problems, errors = [], [], []
        faults = ["garbage", None, "drop", None, "disconnect", None, "garbage", "drop", None, None]
        for fault in faults:
            clock.advance(7)
            if fault:
                sim.inject(fault)
            try:
                if not driver.transport.is_open:
                    driver.open()
                result = driver.poll()
                readings += result.readings
                problems += result.problems
            except TransportError as exc:
                errors.append(type(exc).__name__)
        assert errors == ["TransportTimeout", "TransportError", "TransportTimeout"]
        assert len(problems) == 2  # one per garbage line, named
        stats = sim.stats()
        assert stats["overflow"] == 0 and stats["buffered"] == 0
        assert stats["delivered"] == stats["produced"] == len(readings)
        assert_readings_match_ledger(readings, sim.ledger)


def test_error_status_and_pressure_excursion_reach_the_readings():
    clock = ManualClock(START)
    with served_driver(clock) as (driver, sim, _):
        sim.inject("pressure", duration_s=20)
        clock.advance(15)  # polled while the excursion lasts
        result = driver.poll()
        assert result.readings and all(r.values["cavity_pressure"] > 144 for r in result.readings)
        assert all("pressure_unlocked" in r.status_flags for r in result.readings)
        sim.inject("error_status", count=1)
        clock.advance(10)
        result = driver.poll()
        assert all(not r.status_ok and "system_error" in r.status_flags for r in result.readings)


def test_ledger_tells_overflow_while_connected_from_overflow_with_nobody_connected():
    clock = ManualClock(START)
    sim = make_sim(clock)
    server = TrackedTcpServer(sim).start()
    cfg = G2401.Config(id="picarro-1", url=server.url, timeout_s=0.5)
    driver = G2401(cfg, transport_for(cfg))
    try:
        clock.advance(1500)  # nobody connected: the FIFO overflows
        before = sim.stats()
        assert before["overflow_disconnected"] > 0 and before["overflow_connected"] == 0
        driver.open()
        assert len(driver.poll().readings) == 512
        assert sim.clients == 1
        clock.advance(1500)  # connected but not polled: overflows again
        driver.poll()
        after = sim.stats()
        assert after["overflow_connected"] > 0
        assert after["overflow_disconnected"] == before["overflow_disconnected"]
        driver.close()
        assert wait_until(lambda: sim.clients == 0)
        assert sim.stats()["produced_connected"] > 0
    finally:
        driver.close()
        server.stop()


# ----------------------------------------------------------------------------- driver over a pty


def test_driver_reads_every_record_over_a_real_pty(tmp_path: Path):
    clock = ManualClock(START)
    sim = make_sim(clock)
    server = PtyServer(sim, link=tmp_path / "picarro.tty").start()
    cfg = G2401.Config(id="picarro-1", url=str(tmp_path / "picarro.tty"), timeout_s=1.0)
    driver = G2401(cfg, transport_for(cfg))
    try:
        driver.open()
        readings = []
        for _ in range(3):
            clock.advance(15)
            result = driver.poll()
            assert result.problems == []
            readings += result.readings
        assert driver.command_end == b"\r"
        assert_readings_match_ledger(readings, sim.ledger)
        sim.inject("garbage")
        clock.advance(5)
        result = driver.poll()
        assert result.readings and len(result.problems) == 1
    finally:
        driver.close()
        server.stop()


# ----------------------------------------------------------------------------- bench config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


def test_example_bench_config_pairs_with_the_example_station():
    bench = load_bench_config(REPO / "configs" / "bench.example.toml")
    (inst,) = bench.instruments
    assert (inst.id, inst.model, inst.port) == ("picarro-1", "picarro.g2401", 51020)
    assert inst.columns == COLUMNS
    assert (inst.gas.co2, inst.gas.ch4, inst.gas.co, inst.gas.h2o) == (420.0, 2000.0, 150.0, 1.2)


def test_unknown_bench_key_names_the_file_and_field_path(tmp_path: Path):
    path = write(tmp_path, '[[instruments]]\nid = "p"\nmodel = "picarro.g2401"\ncolour = "red"\n')
    with pytest.raises(ConfigError) as info:
        load_bench_config(path)
    assert info.value.lines == [f"{path}: instruments.0.colour: unknown key (not allowed here)"]


def test_bench_refuses_co_on_a_g2301_and_unknown_models(tmp_path: Path):
    path = write(tmp_path, '[[instruments]]\nid = "p"\nmodel = "picarro.g2301"\ncolumns = ["CO"]\n'
                           '[[instruments]]\nid = "q"\nmodel = "licor.li7000"\n')
    with pytest.raises(ConfigError) as info:
        load_bench_config(path)
    assert len(info.value.lines) == 2
    assert "instruments.0" in info.value.lines[0] and "CO" in info.value.lines[0]
    assert "instruments.1.model" in info.value.lines[1]


def test_bench_pty_link_is_relative_to_the_config_file(tmp_path: Path):
    path = write(tmp_path, '[[instruments]]\nid = "p"\nmodel = "picarro.g2401"\npty_link = "run/p.tty"\n')
    assert load_bench_config(path).instruments[0].pty_link == tmp_path / "run" / "p.tty"


def test_bench_control_port_injects_faults_and_reports_ledger_counts(tmp_path: Path):
    path = write(tmp_path, '[[instruments]]\nid = "p1"\nmodel = "picarro.g2401"\nport = 0\n'
                           'pty_link = "p1.tty"\n')
    clock = ManualClock(START)
    bench = Bench(load_bench_config(path), clock).start()
    try:
        endpoints = bench.endpoints()
        assert endpoints["instruments"]["p1"]["tcp"].startswith("socket://127.0.0.1:")
        assert endpoints["instruments"]["p1"]["pty"].startswith("/dev/pts/")
        host, port = endpoints["control"].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            stream = conn.makefile("rwb")

            def request(obj: dict) -> dict:
                stream.write(json.dumps(obj).encode() + b"\n")
                stream.flush()
                return json.loads(stream.readline())

            assert request({"device": "p1", "fault": "error_status", "count": 1}) == {"ok": True}
            assert bench.devices["p1"].receive(b"_Instr_GetStatus\r") != b"963\r"
            clock.advance(30)
            stats = request({"cmd": "stats"})["stats"]["p1"]
            assert stats["produced"] == stats["buffered"] > 0
            ledger = request({"cmd": "ledger", "device": "p1"})["ledger"]
            assert len(ledger) == stats["produced"] and ledger[0]["fate"] == "buffered"
            refused = request({"device": "nope", "fault": "garbage"})
            assert refused["ok"] is False and "p1" in refused["error"]
            assert request({"cmd": "launch"})["ok"] is False
    finally:
        bench.stop()
    assert not (tmp_path / "p1.tty").exists()


# ----------------------------------------------------------------------------- station-sim run


def read_line(proc: subprocess.Popen, seconds: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], seconds)
    assert ready, "station-sim printed nothing"
    return proc.stdout.readline()


def control(address: str, obj: dict) -> dict:
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(json.dumps(obj).encode() + b"\n")
        return json.loads(conn.makefile("rb").readline())


def test_station_sim_run_prints_one_json_line_serves_and_exits_0_on_sigterm(tmp_path: Path):
    path = write(tmp_path, '[[instruments]]\nid = "picarro-1"\nmodel = "picarro.g2401"\nport = 0\n'
                           'seed = 4\npty_link = "picarro-1.tty"\n')
    exe = Path(sys.executable).parent / "station-sim"
    proc = subprocess.Popen(
        [str(exe), "run", "--config", str(path), "--speed", "30", "--start", "2026-03-01T00:00:00Z"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    driver = None
    try:
        endpoints = json.loads(read_line(proc, 20))
        inst = endpoints["instruments"]["picarro-1"]
        assert inst["driver"] == "picarro.g2401" and os.path.exists(inst["pty"])
        cfg = G2401.Config(id="picarro-1", url=inst["tcp"], timeout_s=2.0)
        driver = G2401(cfg, transport_for(cfg))
        driver.open()
        readings = []
        assert wait_until(lambda: bool(readings.extend(driver.poll().readings) or readings), 15)
        assert readings[0].time >= datetime(2026, 3, 1, tzinfo=UTC)
        assert control(endpoints["control"], {"device": "picarro-1", "fault": "garbage"}) == {"ok": True}
        assert driver.poll().problems
        stats = control(endpoints["control"], {"cmd": "stats"})["stats"]["picarro-1"]
        assert stats["delivered"] >= len(readings)
        driver.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert proc.stdout.read() == ""  # exactly one line was printed
    finally:
        if driver is not None:
            driver.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_station_sim_bad_config_exits_2_with_file_and_field(tmp_path: Path):
    path = write(tmp_path, '[[instruments]]\nid = "p"\nmodel = "picarro.g2401"\nport = "x"\n')
    exe = Path(sys.executable).parent / "station-sim"
    done = subprocess.run([str(exe), "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{path}: instruments.0.port:" in done.stderr
