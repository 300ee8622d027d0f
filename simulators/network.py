"""`station-agent demo`: a whole network on this machine for a few simulated hours, then a summary.

In a run folder of its own (a temporary one unless given) and on free ports, it starts:

- a real mosquitto (`simulators.broker.MosquittoBroker`: persistence, `set_tcp_nodelay`);
- `station-sim run` with the example bench config (the simulated analyzer, valve and flow sensor);
- `central-receiver run` with the example central config;
- `station-agent run` with the example station config,

the example configs (package data in simulators/demo_configs/, equal to configs/*.example.toml)
copied with their ports and paths rewritten into the run folder (nothing under
the user's data/ is touched), the simulator, central and the agent on one simulated clock (the
same --speed, --start and --anchor: central refuses records stamped beyond its own clock). H
simulated hours after the start, or after every part is up when that is later (a slow start-up on a
loaded machine shifts the run instead of shortening it), the agent gets SIGTERM (it parks the valve,
stores what is open and waits for central's ack of its outbox), then central and the rest stop,
and the summary compares, seq by seq, what the station produced with what central stored, as
`station-agent records` and `central-receiver records` print them (the demo reads no database).

`Network` is the orchestration alone; the fault-injection tests (tests/station_agent/
test_forwarding.py) use it to kill and restart single parts, and test_real_link.py to put the
station and central on two hosts (network namespaces) through command prefixes.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

from ghgnet.timeutil import iso_utc
from simulators.broker import MosquittoBroker, find_mosquitto

DEMO_CONFIGS = ("station.example.toml", "bench.example.toml", "central.example.toml")
"""The example configs the demo starts from: package data, so the demo runs from an installed wheel."""
KINDS = ("minute", "event", "calibration", "target")
"""Record kinds a station produces; each has its table with a `seq` column on both sides."""
IDENTITY: dict[str, tuple[str, ...]] = {
    "minute": ("device", "time", "stream"),
    "event": ("kind", "time"),
    "calibration": ("id", "time_start"),
    "target": ("id", "time"),
}
"""The fields of a record, as both `records` commands print them, that say which record it is: the
summary compares the station's and central's seq by seq on them."""


class DemoError(RuntimeError):
    """The demo cannot run (no mosquitto, a part that did not start); the message says why."""


# -- config rewriting ----------------------------------------------------------------------------

def example_config(name: str) -> str:
    """The text of one of `DEMO_CONFIGS`, read from the installed package."""
    if name not in DEMO_CONFIGS:
        raise DemoError(f"no example config {name!r}; the demo has {', '.join(DEMO_CONFIGS)}")
    return files("simulators").joinpath("demo_configs", name).read_text(encoding="utf-8")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def set_toml_value(text: str, table: str, key: str, value: Any) -> str:
    """Set `key = value` in the first `[table]` of a TOML text, keeping everything else (comments
    too); the key, or the table, is added when missing."""
    lines = text.splitlines()
    header = re.compile(rf"^\s*\[{re.escape(table)}\]\s*(#.*)?$")
    line = f"{key} = {toml_value(value)}"
    for i, ln in enumerate(lines):
        if header.match(ln):
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith("["):
                if re.match(rf"^\s*{re.escape(key)}\s*=", lines[j]):
                    lines[j] = line
                    return "\n".join(lines) + "\n"
                j += 1
            lines.insert(i + 1, line)
            return "\n".join(lines) + "\n"
    return text.rstrip("\n") + f"\n\n[{table}]\n{line}\n"


def bench_toml(text: str) -> str:
    """The example bench on free TCP ports (0), without its pty links (they point into ../run)."""
    text = re.sub(r"(?m)^port = \d{4,5}\s*(#.*)?$", "port = 0", text)
    return re.sub(r"(?m)^(pty_link|link) = .*$", "", text)


def station_toml(text: str, endpoints: dict, db: Path, broker_port: int,
                 settings: dict[str, dict[str, Any]] | None = None) -> str:
    """The example station pointed at the simulators' endpoints, the run folder and the broker.
    `settings`: {table: {key: value}} set on top (e.g. {"forwarding": {"replay_rate": 0}})."""
    parsed = tomllib.loads(text)
    for group in ("analyzers", "valves", "devices"):
        for dev in parsed.get(group, []):
            ep = endpoints["instruments"].get(dev["id"])
            if ep is None or "url" not in dev:
                continue
            if "url" not in ep:
                raise DemoError(f"the simulator serves no URL for {dev['id']}")
            text = text.replace(json.dumps(dev["url"]), json.dumps(ep["url"]))
    return _local(text, db, broker_port, settings)


def central_toml(text: str, db: Path, broker_port: int, settings: dict[str, dict[str, Any]] | None = None) -> str:
    return _local(set_toml_value(text, "storage", "backend", "sqlite"), db, broker_port, settings)


def _local(text: str, db: Path, broker_port: int, settings: dict[str, dict[str, Any]] | None) -> str:
    """A config's database in the run folder, its broker on this machine, `settings` on top."""
    text = set_toml_value(text, "storage", "path", str(db))
    text = set_toml_value(text, "mqtt", "host", "127.0.0.1")
    text = set_toml_value(text, "mqtt", "port", broker_port)
    for table, values in (settings or {}).items():
        for k, v in values.items():
            text = set_toml_value(text, table, k, v)
    return text


# -- the processes -------------------------------------------------------------------------------

def _python_module(module: str) -> list[str]:
    return [sys.executable, "-m", module]


@dataclass
class Network:
    """Broker, simulators, central and one station on this machine, in `run_dir`.

    `speed`, `start`, `anchor`: the shared simulated clock (the simulator, central and the agent
    get the same three, so they agree on the time whenever they were launched). `station_settings` and
    `central_settings` ({table: {key: value}}) adjust the example configs (central always logs
    JSON lines at info or debug: `start_central` reads them); `broker_users` and `broker_acl`
    turn on passwords and an ACL. `prefixes` ({part: command prefix}, parts "mosquitto",
    "station-sim", "central-receiver", "station-agent") runs a part's command through a prefix,
    e.g. `ip netns exec NAME` to put it on another (network namespace) host; `broker_host` is the
    address mosquitto listens on there (central's config still names 127.0.0.1: its own host).
    """

    run_dir: Path
    speed: float = 1440.0
    start: datetime = field(default_factory=lambda: datetime.now(UTC).replace(second=0, microsecond=0))
    anchor: datetime | None = None
    station_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    central_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    broker_users: dict[str, str] | None = None
    broker_acl: str | None = None
    prefixes: dict[str, list[str]] = field(default_factory=dict)
    broker_host: str = "127.0.0.1"
    quiet: bool = True

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.anchor is None:
            self.anchor = datetime.now(UTC)
        self.broker = None
        self.endpoints: dict[str, Any] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.station_db = self.run_dir / "station.sqlite"
        self.central_db = self.run_dir / "central.sqlite"
        example = tomllib.loads(example_config("station.example.toml"))
        self.station_id: str = example["station"]["id"]
        self._agent_log_seen = 0

    # -- clock ---------------------------------------------------------------------------------
    def clock_args(self) -> list[str]:
        assert self.anchor is not None
        return ["--speed", repr(self.speed), "--start", iso_utc(self.start), "--anchor", iso_utc(self.anchor)]

    def sim_now(self) -> datetime:
        """The shared simulated time now."""
        assert self.anchor is not None
        return self.start + (datetime.now(UTC) - self.anchor) * self.speed

    def real_seconds_until(self, sim_time: datetime) -> float:
        return max(0.0, (sim_time - self.sim_now()).total_seconds() / self.speed)

    # -- parts ---------------------------------------------------------------------------------
    def start_broker(self) -> None:
        if find_mosquitto() is None:
            raise DemoError(
                "mosquitto is not installed. Install it (Debian/Ubuntu: sudo apt-get install mosquitto; "
                "./dev demo does it when run as root) and run the demo again."
            )
        self.broker = MosquittoBroker(self.run_dir / "mosquitto", host=self.broker_host, users=self.broker_users,
                                      acl=self.broker_acl, command_prefix=self.prefixes.get("mosquitto", ()))
        self.broker.start()

    def _spawn(self, name: str, args: list[str], stdout=None) -> subprocess.Popen:
        log = (self.run_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen([*self.prefixes.get(name, ()), *args], stdout=stdout if stdout is not None else log,
                                stderr=log, stdin=subprocess.DEVNULL, cwd=self.run_dir)
        log.close()
        self.procs[name] = proc
        return proc

    def start_sim(self) -> None:
        path = self.run_dir / "bench.toml"
        path.write_text(bench_toml(example_config("bench.example.toml")))
        proc = self._spawn("station-sim", [*_python_module("simulators.cli"), "run", "--config", str(path),
                                           *self.clock_args()], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise DemoError(f"station-sim did not start; see {self.run_dir / 'station-sim.log'}:\n"
                            + self.log_tail("station-sim"))
        self.endpoints = json.loads(line)

    def write_station_config(self) -> Path:
        assert self.broker is not None
        path = self.run_dir / "station.toml"
        path.write_text(station_toml(example_config("station.example.toml"), self.endpoints,
                                     self.station_db, self.broker.port, self.station_settings))
        return path

    def write_central_config(self) -> Path:
        assert self.broker is not None
        path = self.run_dir / "central.toml"
        settings = {table: dict(values) for table, values in self.central_settings.items()}
        logging = settings.setdefault("logging", {})  # start_central reads the log: JSON lines, info at least
        logging["format"] = "json"
        if logging.get("level") != "debug":
            logging["level"] = "info"
        path.write_text(central_toml(example_config("central.example.toml"), self.central_db,
                                     self.broker.port, settings))
        return path

    def start_central(self, timeout_s: float = 60.0) -> None:
        """Start the receiver and return once it is subscribed: a station's record published
        before central has a session at the broker has no subscriber to go to, and comes back
        only when the station's ack timeout sends it again (a minute later)."""
        path = self.write_central_config()
        log = self.run_dir / "central-receiver.log"
        seen = log.stat().st_size if log.exists() else 0  # a restart appends to the same log
        self._spawn("central-receiver", [*_python_module("central.cli"), "run", "--config", str(path),
                                         *self.clock_args()])

        def subscribed() -> bool:
            with log.open("rb") as f:
                f.seek(seen)
                text = f.read()
            if b'"event": "subscription_refused"' in text or b'"event": "connect_refused"' in text:
                raise DemoError(f"the broker refused central-receiver; see {log}:\n{self.log_tail('central-receiver')}")
            return b'"event": "subscribed"' in text

        self.wait(subscribed, timeout_s, "central-receiver to subscribe")

    def start_agent(self) -> None:
        path = self.write_station_config()
        log = self.run_dir / "station-agent.log"
        self._agent_log_seen = log.stat().st_size if log.exists() else 0  # a restart appends to the same log
        self._spawn("station-agent", [*_python_module("station_agent.cli"), "run", "--config", str(path),
                                      *self.clock_args()])

    def wait_agent_started(self, timeout_s: float = 120.0) -> datetime:
        """Return the simulated time once the agent last started has logged `agent_started` (its
        signal handlers are set, its devices and engine are running)."""
        log = self.run_dir / "station-agent.log"

        def started() -> bool:
            with log.open("rb") as f:
                f.seek(self._agent_log_seen)
                return b"agent_started" in f.read()

        self.wait(started, timeout_s, "station-agent to start")
        return self.sim_now()

    def start_all(self) -> None:
        self.start_broker()
        self.start_sim()
        self.start_central()
        self.start_agent()

    def signal(self, name: str, sig: int) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)

    def stop(self, name: str, timeout_s: float = 60.0, kill: bool = False) -> int | None:
        """SIGTERM (or SIGKILL) a part and wait for it; returns its exit code."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            rc = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        return rc

    def check_running(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise DemoError(f"{name} exited with code {proc.returncode}; see "
                                f"{self.run_dir / (name + '.log')}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join((self.run_dir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        """Stop whatever still runs: agent, central, simulators, broker (in that order)."""
        for name in ("station-agent", "central-receiver", "station-sim", *list(self.procs)):
            self.stop(name, timeout_s=30)
        if self.broker is not None:
            self.broker.stop()

    # -- what each side holds (each program's own `records` command) ------------------------------
    def _command(self, part: str, args: list[str], ok: tuple[int, ...] = (0,)) -> dict[str, Any]:
        """Run one of a part's commands (on its host: its prefix) and read its JSON answer."""
        done = subprocess.run([*self.prefixes.get(part, ()), *args], check=False, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, cwd=self.run_dir, timeout=120)
        if done.returncode not in ok:
            raise DemoError(f"{part} {args[3]} exited with code {done.returncode}: {done.stderr.strip()[-2000:]}")
        return json.loads(done.stdout)

    def station_records(self) -> dict[str, Any]:
        """`station-agent records --json`: the station's store, its records per kind, its outbox
        and set-aside seqs (read from its database, whether the agent runs or not)."""
        return self._command("station-agent", [*_python_module("station_agent.cli"), "records", "--config",
                                               str(self.run_dir / "station.toml"), "--json"])

    def central_records(self) -> dict[str, Any]:
        """`central-receiver records --json` for this station: what central holds of it."""
        return self._command("central-receiver", [*_python_module("central.cli"), "records", "--config",
                                                  str(self.run_dir / "central.toml"), "--station", self.station_id,
                                                  "--json"])

    def forwarder_stats(self) -> dict[str, Any]:
        """The forwarder's counters, from `station-agent status --json` (live, or the last heartbeat
        the agent stored; status exits 1 when the agent is down)."""
        status = self._command("station-agent", [*_python_module("station_agent.cli"), "status", "--config",
                                                 str(self.run_dir / "station.toml"), "--json"], ok=(0, 1))
        return (status.get("agent") or {}).get("forwarder") or {}

    def wait(self, predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.05) -> Any:
        """Poll `predicate` until truthy (returned), failing after `timeout_s` or when a part died."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate()
            if value:
                return value
            self.check_running()
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {timeout_s:g} s waiting for {what}")
            time.sleep(interval_s)


def identities(records: dict[str, list[dict[str, Any]]]) -> dict[str, dict[int, tuple]]:
    """{kind: {seq: identity}} of the records a `records` command printed (a station's or
    central's: the same identities, `IDENTITY`); a seq held twice is an error."""
    out: dict[str, dict[int, tuple]] = {k: {} for k in KINDS}
    for kind, fields in IDENTITY.items():
        for rec in records.get(kind, []):
            if rec["seq"] in out[kind]:
                raise DemoError(f"{kind} seq {rec['seq']} held twice")
            out[kind][rec["seq"]] = tuple(rec[f] for f in fields)
    return out


def summarise(net: Network, forwarder: dict | None = None) -> dict[str, Any]:
    """Records produced, forwarded, acknowledged, stored, duplicates and lost per kind; the
    calibrations (fit RMSE) and target biases against the goals, as central holds them."""
    station, central = net.station_records(), net.central_records()
    produced, stored = identities(station["records"]), identities(central["records"])
    queued = {k: set(station["outbox"].get(k, ())) for k in KINDS}
    kinds: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        p, s = produced[kind], stored[kind]
        # Same record under two seqs at central would be a duplicate (central's key is station+seq,
        # so one seq can never be stored twice).
        idents = [v for v in s.values()] if kind == "minute" else []
        kinds[kind] = {
            "produced": len(p),
            "acknowledged": len(set(p) - queued[kind]),
            "stored": len(s),
            "still_queued": len(queued[kind]),
            "duplicates": len(idents) - len(set(idents)),
            "lost": len(set(p) - set(s) - queued[kind]),
            "unknown_at_central": len(set(s) - set(p)),
            "content_mismatch": sum(1 for q in set(p) & set(s) if p[q] != s[q]),
        }
    station_cfg = tomllib.loads((net.run_dir / "station.toml").read_text()) if (net.run_dir / "station.toml").exists() else {}
    goals = (station_cfg.get("sampling") or {}).get("goals") or {"co2": 0.1, "ch4": 2.0, "co": 2.0, "n2o": 0.1}
    held = central["records"]
    calibrations = [{"id": c["id"], "time_end": c["time_end"], "rmse": c["rmse"]}
                    for c in sorted(held["calibration"], key=lambda c: c["time_start"])]
    targets = [{"id": t["id"], "time": t["time"], "cylinder": t["cylinder"],
                "bias": {sp: (b["bias"], b["within_goal"]) for sp, b in t["bias"].items()}}
               for t in sorted(held["target"], key=lambda t: t["time"])]
    return {
        "station": net.station_id,
        "simulated": {"start": net.start.isoformat(), "speed": net.speed},
        "kinds": kinds,
        "forwarder": forwarder or {},
        "redeliveries_absorbed": central["duplicates"],
        "lost": sum(k["lost"] for k in kinds.values()),
        "duplicates": sum(k["duplicates"] for k in kinds.values()),
        "still_queued": sum(k["still_queued"] for k in kinds.values()),
        "goals": goals,
        "calibrations": calibrations,
        "targets": targets,
    }


def format_summary(s: dict[str, Any]) -> str:
    out = [f"ghgnet demo: station {s['station']}, simulated from {s['simulated']['start']} at "
           f"{s['simulated']['speed']:g}x", ""]
    head = f"{'records':<13}{'produced':>9}{'forwarded':>11}{'acked':>8}{'stored':>8}{'queued':>8}" \
           f"{'dupl.':>7}{'lost':>6}"
    out.append(head)
    for kind, k in s["kinds"].items():
        forwarded = k["produced"] - k["still_queued"] if k["still_queued"] else k["produced"]
        out.append(f"{kind:<13}{k['produced']:>9}{forwarded:>11}{k['acknowledged']:>8}{k['stored']:>8}"
                   f"{k['still_queued']:>8}{k['duplicates']:>7}{k['lost']:>6}")
    fw = s["forwarder"]
    if fw:
        out.append(f"forwarder: {fw.get('published_records', 0)} records in {fw.get('published_messages', 0)} "
                   f"messages published, {fw.get('acked', 0)} acknowledged by central, "
                   f"{fw.get('resent', 0)} resent, {fw.get('denied', 0)} denied (last agent run)")
    out.append(f"central absorbed {s['redeliveries_absorbed']} redelivered record(s) as duplicates "
               "(stored once)")
    out.append(f"duplicates stored: {s['duplicates']}   lost: {s['lost']}   still queued at the station: "
               f"{s['still_queued']}")
    mismatch = sum(k["content_mismatch"] + k["unknown_at_central"] for k in s["kinds"].values())
    if mismatch:
        out.append(f"WARNING: {mismatch} record(s) at central differ from the station's")
    out.append("")
    out.append(f"calibrations ({len(s['calibrations'])}), fit RMSE:")
    for c in s["calibrations"]:
        rm = "  ".join(f"{sp} {v:.4f}" for sp, v in c["rmse"].items() if v is not None)
        out.append(f"  {c['id']}  ended {c['time_end']}  {rm}")
    goals = s["goals"]
    out.append(f"target biases (measured - assigned) against the goals "
               f"({', '.join(f'{sp} ±{g:g}' for sp, g in goals.items())}):")
    for t in s["targets"]:
        parts = []
        for sp, (bias, ok) in t["bias"].items():
            if bias is None:
                continue
            parts.append(f"{sp} {bias:+.3f} {'ok' if ok else 'OUTSIDE' if ok is False else '?'}")
        out.append(f"  {t['cylinder']:<6} {t['time']}  " + "  ".join(parts))
    if not s["targets"]:
        out.append("  (none yet: a target runs every 2 simulated hours after the first calibration)")
    return "\n".join(out)


# -- the command -----------------------------------------------------------------------------------

def run_demo(hours: float = 24.0, speed: float = 1440.0, run_dir: Path | None = None,
             progress: Callable[[str], None] = print, drain_timeout_s: float = 60.0,
             start: datetime | None = None) -> dict[str, Any]:
    """Run the network for `hours` simulated hours at `speed` from `start` (default: now, to the
    minute); returns the summary (`summarise`). The run folder is removed afterwards unless given."""
    own_dir = run_dir is None
    folder = Path(tempfile.mkdtemp(prefix="ghgnet-demo-")) if own_dir else Path(run_dir)
    startup_s = 4.0  # real seconds for the parts to start before simulated time begins
    when = {} if start is None else {"start": start}
    net = Network(folder, speed=speed, anchor=datetime.now(UTC) + timedelta(seconds=startup_s), **when,
                  # the agent may wait for central's acks at its stop
                  station_settings={"forwarding": {"stop_drain_s": drain_timeout_s}})
    try:
        progress(f"run folder {folder}; {hours:g} simulated hours at {speed:g}x "
                 f"(about {hours * 3600 / speed + startup_s:.0f} s)")
        net.start_broker()
        progress(f"mosquitto on 127.0.0.1:{net.broker.port}")
        net.start_sim()
        net.start_central()
        net.start_agent()
        ready = net.wait_agent_started()
        progress(f"station-sim, central-receiver and station-agent ({net.station_id}) started")
        # The run is counted from when every part is up: a slow start-up (a loaded machine) past
        # the anchor shifts the run's end rather than eating into its simulated hours.
        first = max(net.start, ready)
        if first > net.start:
            progress(f"the parts were up at simulated {first:%Y-%m-%d %H:%M}Z, after the start: "
                     f"the run ends {hours:g} simulated hours later")
        end = first + timedelta(hours=hours)
        last = time.monotonic()  # the first count after 5 s: the parts start meanwhile, on 2 cores or fewer
        while net.sim_now() < end:
            net.check_running()
            time.sleep(min(0.5, max(0.05, net.real_seconds_until(end))))
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                station = net.station_records() if net.station_db.exists() else None
                stored = len(net.central_records()["records"]["minute"])
                produced = len(station["records"]["minute"]) if station else 0
                outbox = sum(len(seqs) for seqs in station["outbox"].values()) if station else 0
                progress(f"  simulated {net.sim_now():%Y-%m-%d %H:%M}Z: {produced} minutes at the station, "
                         f"{stored} at central, outbox {outbox}")
        progress("stopping the agent (SIGTERM: valve parked, open minutes stored, outbox drained to central)")
        rc = net.stop("station-agent", timeout_s=drain_timeout_s + 60)
        if rc != 0:
            raise DemoError(f"station-agent exited with code {rc}:\n{net.log_tail('station-agent')}")
        net.stop("central-receiver")
        net.stop("station-sim")
        return summarise(net, net.forwarder_stats())
    finally:
        net.close()
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)
