"""The decoding process (central/decoder.py): the same answer as decoding in the receiver's own
process, and nothing lost when it dies, hangs or was never there."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.central import central_config
from support.mqtt import TestStation, minute
from support.wait import wait_until

from central.decoder import DecodeProcess
from central.ingest import decode_group
from central.store import open_store
from central.store.base import MinuteRows
from ghgnet.wire import StatusMessage, encode_batch

SENT = datetime(2026, 3, 2, tzinfo=UTC)
MAX = 65536


def batch(seqs, station: str = "st-a") -> bytes:
    return encode_batch(station, "minute", [minute(s) for s in seqs], SENT)


def mixed_group() -> list[tuple[str, bytes]]:
    """A group with something of every kind the receiver meets."""
    good = batch(range(1, 6))
    status = StatusMessage(schema=1, station="st-a", state="up", time=SENT, backlog=3).model_dump_json().encode()
    return [
        ("ghg/v1/st-a/minute", good),
        ("ghg/v1/st-a/minute", good.replace(b'"seq":3,', b'"seq":3,"bogus":true,')),  # one record refused
        ("ghg/v1/st-a/minute", b"{not json"),
        ("ghg/v1/st-b/minute", good),  # forged: the payload's station is st-a
        ("ghg/v1/st-a/minute", b" " * (MAX + 1)),  # oversize
        ("ghg/v1/st-a/status", status),
        ("ghg/v1/st-a/status", b""),  # a retained status cleared: ignored
        ("ghg/v1/st-a/nonsense", b"{}"),
    ]


@pytest.fixture
def decoder():
    made: list[DecodeProcess] = []

    def make(backend: str = "sqlite", **kw) -> DecodeProcess:
        d = DecodeProcess(backend, MAX, "warning", "json", **kw).start()
        made.append(d)
        assert d.wait_ready(30), "the decode process did not start"
        return d

    yield make
    for d in made:
        d.stop()


def test_minute_rows_cross_as_marshal_data_or_as_pickle_holds_them():
    import marshal
    import pickle

    texts = MinuteRows("st-a", [("st-a", 1, "2026-03-02T00:00:00.000Z", "picarro-1", "inlet:top", 1.25, "U", "[]",
                                 60, None, "{}", "2026-03-02T00:01:00.000Z", '{"co2":{"mean":420.5}}')], [])
    blob = pickle.dumps(texts, protocol=5)
    assert marshal.dumps(texts.rows, 4) in blob  # the rows went as marshal data
    assert pickle.loads(blob) == texts
    times = MinuteRows("st-a", [("st-a", 1, SENT, "picarro-1")], [])  # the PostgreSQL backend's rows
    assert pickle.loads(pickle.dumps(times, protocol=5)) == times


def test_the_decode_process_gives_what_the_store_prepares(decoder, store):
    """On each backend: the child's rows are those the store itself prepares (`store.prepare`)."""
    d = decoder(store.backend)
    group = mixed_group()
    now = datetime.now(UTC)
    remote = d.decode(group, now)
    assert remote is not None and d.groups == 1 and d.pid != os.getpid()
    local = decode_group(group, MAX, store.prepare, now)
    assert remote == local
    present, prepared = remote
    assert present == [0, 1, 2, 3, 4, 5, 7]  # the cleared status is ignored
    first, second = prepared.items[0], prepared.items[1]
    assert isinstance(first, MinuteRows) and [r[1] for r in first.rows] == [1, 2, 3, 4, 5]
    assert isinstance(second, MinuteRows) and [r[1] for r in second.rows] == [1, 2, 4, 5]
    assert [(x.seq, x.reason_code) for x in second.rejected] == [(3, "invalid_record")]
    codes = [getattr(x, "reason_code", None) for x in prepared.items[2:]]
    assert codes == ["malformed_json", "forged_station", "oversize", None, "bad_topic"]
    # and storing what the child prepared gives what storing the messages gives
    outcomes = store.write(prepared)
    assert [(o.new, o.duplicate, o.dead_lettered, o.ack_seqs) for o in outcomes[:2]] == [
        (5, 0, 0, [1, 2, 3, 4, 5]), (0, 4, 1, [1, 2, 4, 5, 3])]
    assert store.held_seqs("st-a") == [1, 2, 3, 4, 5]


def test_the_child_ignores_the_stop_signals_of_its_process_group(decoder):
    """A Ctrl-C or a stop signal sent to the whole group must not take the child away while the
    receiver drains its queue: the receiver tells it when to stop."""
    d = decoder()
    os.kill(d.pid, signal.SIGTERM)
    os.kill(d.pid, signal.SIGINT)
    assert d.decode([("ghg/v1/st-a/minute", batch([1]))], datetime.now(UTC)) is not None
    assert (d.groups, d.losses) == (1, 0)


def test_a_child_of_another_version_is_not_used(decoder):
    d = DecodeProcess("sqlite", MAX, "warning", "json")
    d.version = "0.0.0-the-receiver-before-an-upgrade"
    try:
        d.start()
        assert not d.wait_ready(30)
        assert d.losses == 1 and d.pid is None
        assert d.decode([("ghg/v1/st-a/minute", batch([1]))], datetime.now(UTC)) is None  # decode here
    finally:
        d.stop()


def test_a_child_that_is_not_ready_in_time_is_given_up():
    d = DecodeProcess("sqlite", MAX, "warning", "json", timeout_s=1.0).start()
    try:
        os.kill(d.pid, signal.SIGSTOP)  # before it could say it is ready
        wait_until(lambda: not d.wait_ready(0) and d.losses == 1, 10, message="the child given up")
        assert d.pid is None
    finally:
        d.stop()


def test_a_child_that_cannot_start_is_restarted_ever_more_slowly():
    """A broken install (here: a backend the child does not know) costs a log line per restart,
    at 0.5, 1, 2 ... s apart, not a loop."""
    d = DecodeProcess("no-such-backend", MAX, "critical", "json", restart_interval_s=0.5,
                      max_restart_interval_s=2.0)
    try:
        for losses, delay in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 2.0)):
            d.start()
            assert not d.wait_ready(30)  # the child dies at start: the end of its socket
            assert (d.losses, d.restart_delay_s) == (losses, delay)
            assert d.decode([("ghg/v1/st-a/minute", batch([1]))], datetime.now(UTC)) is None
            assert d.pid is None  # not restarted before the delay
    finally:
        d.stop()


def test_stop_while_a_hung_child_holds_a_group_kills_it(decoder):
    d = decoder(timeout_s=60.0)
    victim = d.pid
    os.kill(victim, signal.SIGSTOP)
    answer: list = []
    caller = threading.Thread(target=lambda: answer.append(d.decode([("ghg/v1/st-a/minute", batch([1]))],
                                                                    datetime.now(UTC))))
    caller.start()
    wait_until(lambda: d._lock.locked(), message="the call in progress")
    started = time.monotonic()
    d.stop(timeout_s=0.5)
    caller.join(10)
    assert not caller.is_alive() and answer == [None]  # given back to decode in the receiver
    assert time.monotonic() - started < 10  # not the 60 s of the group's time limit
    assert d.pid is None and _gone(victim)


def test_the_child_exits_when_the_receiver_is_gone(decoder):
    d = decoder()
    process = d._process
    d._conn.close()  # what the child sees when the receiver dies: the end of the pipe
    assert process.wait(10) == 0


def test_the_receiver_decodes_in_its_child_process(mosquitto, tmp_path: Path, start_receiver):
    receiver = start_receiver(central_config(mosquitto, tmp_path / "c.sqlite"))
    station = TestStation(mosquitto)
    try:
        for first in range(1, 200, 20):
            station.publish("minute", batch(range(first, first + 20)))
        station.wait_acked(range(1, 201))
    finally:
        station.close()
    assert receiver.decoder is not None and receiver.decoder.pid != os.getpid()
    wait_until(lambda: receiver.decoder.wait_ready(0), message="the decode process ready")
    station = TestStation(mosquitto)
    try:
        before = receiver.decoder.groups
        station.publish("minute", batch(range(201, 211)))
        station.wait_acked(range(201, 211))
    finally:
        station.close()
    assert receiver.decoder.groups > before  # a group after start-up went through the child


def test_without_a_decode_process_the_receiver_decodes_itself(mosquitto, tmp_path: Path, start_receiver):
    db = tmp_path / "c.sqlite"
    receiver = start_receiver(central_config(mosquitto, db, ingest={"decode_process": False}))
    assert receiver.decoder is None
    station = TestStation(mosquitto)
    try:
        station.publish("minute", batch(range(1, 11)))
        station.wait_acked(range(1, 11))
    finally:
        station.close()
    store = open_store("sqlite", path=db)
    try:
        assert store.held_seqs("st-a") == list(range(1, 11))
    finally:
        store.close()


@pytest.mark.parametrize("fault", ["killed", "hung"])
def test_a_lost_decode_process_loses_nothing_and_is_replaced(fault, mosquitto, tmp_path: Path, start_receiver):
    """SIGKILL (dies) or SIGSTOP (hangs) the child while a station streams batches: the receiver
    decodes those groups itself, starts a new child after the restart delay, and stores every
    record once."""
    db = tmp_path / "c.sqlite"
    receiver = start_receiver(central_config(mosquitto, db))
    d = receiver.decoder
    assert d is not None and d.wait_ready(30)
    d.restart_interval_s, d.timeout_s = 0.2, 1.0
    station = TestStation(mosquitto)
    try:
        station.publish("minute", batch(range(1, 51)))
        station.wait_acked(range(1, 51))
        victim = d.pid
        os.kill(victim, signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
        for first in range(51, 551, 50):
            station.publish("minute", batch(range(first, first + 50)))
        station.wait_acked(range(1, 551), timeout_s=30)
        assert d.losses == 1
        # a new child is started at a group after the restart delay, and decodes later groups
        groups, last = d.groups, 550

        def taken_over() -> bool:
            nonlocal last
            station.publish("minute", batch(range(last + 1, last + 11)))
            station.wait_acked(range(last + 1, last + 11))
            last += 10
            return d.pid not in (None, victim) and d.groups > groups

        wait_until(taken_over, 30, interval_s=0.1, message="a new decode process")
    finally:
        station.close()
        if fault == "hung":
            try:
                os.kill(victim, signal.SIGKILL)  # the receiver killed it already; make sure
            except ProcessLookupError:
                pass
    assert d.losses == 1
    # counted after the ack is published: the station may see the ack first
    wait_until(lambda: receiver.stats["records_new"] == last, message="the records counted")
    assert receiver.stats["records_duplicate"] == 0
    store = open_store("sqlite", path=db)
    try:
        assert store.held_seqs("st-a") == list(range(1, last + 1))
    finally:
        store.close()


def _decoder_children(pid: int) -> list[int]:
    """Pids of `python -m central.decoder` processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"central.decoder" in cmdline:
            found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited, waiting for its (dead) parent's reaper


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_the_daemon_leaves_no_decode_process_behind(stop, mosquitto, tmp_path: Path):
    """`central-receiver run` as systemd runs it: its decode child ends with it, whether the
    receiver is stopped (SIGTERM: it drains, then ends the child) or killed (the child reads the
    end of the socket pair)."""
    import subprocess
    import sys

    config = tmp_path / "central.toml"
    config.write_text(
        f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\nclient_id = "central-daemon"\n'
        f'[storage]\nbackend = "sqlite"\npath = "{tmp_path / "c.sqlite"}"\n'
        '[aggregate]\nenabled = false\n[logging]\nlevel = "warning"\n'
    )
    daemon = subprocess.Popen([Path(sys.executable).parent / "central-receiver", "run", "--config", str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        (child,) = wait_until(lambda: _decoder_children(daemon.pid), 30, message="the decode child")
        station = TestStation(mosquitto)
        try:  # the daemon works, through its child (sent again until it has subscribed)
            def acked() -> bool:
                station.publish("minute", batch(range(1, 11)))
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline and daemon.poll() is None:
                    if set(range(1, 11)) <= station.acked:
                        return True
                    time.sleep(0.01)
                assert daemon.poll() is None, daemon.stderr.read().decode()[-2000:]
                return False

            wait_until(acked, 30, message="the daemon's acks")
        finally:
            station.close()
        daemon.send_signal(getattr(signal, stop))
        code = daemon.wait(30)
        assert code == (0 if stop == "SIGTERM" else -signal.SIGKILL), daemon.stderr.read().decode()[-2000:]
        wait_until(lambda: _gone(child), 10, message="the decode child to exit")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        daemon.stderr.close()
