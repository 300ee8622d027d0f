"""`station-agent`: the daemon and the technician's commands.

Exit codes: 0 ok; 1 the command ran but found a problem (e.g. status of a station that is down);
2 bad input (a config with errors, a bad argument); 3 the database or daemon is unreachable.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ghgnet.config import ConfigError

app = typer.Typer(
    name="station-agent",
    help="ghgnet station agent: runs a greenhouse-gas monitoring station.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check the configuration and write its JSON schema.", no_args_is_help=True)
drivers_app = typer.Typer(help="Instrument drivers known to this installation.", no_args_is_help=True)
cylinders_app = typer.Typer(help="The cylinder registry (standards, targets, zero, span).", no_args_is_help=True)
maintenance_app = typer.Typer(help="Maintenance mode: every minute is flagged while it is on.", no_args_is_help=True)
valve_app = typer.Typer(help="Move the sampling valve by hand (maintenance mode only).", no_args_is_help=True)
calibrate_app = typer.Typer(help="Start a calibration (or target/check run) now.", no_args_is_help=True)
set_aside_app = typer.Typer(
    help="Records the broker would not take, set aside so they do not block the others: kept, never deleted.",
    no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(drivers_app, name="drivers")
app.add_typer(cylinders_app, name="cylinders")
app.add_typer(maintenance_app, name="maintenance")
app.add_typer(valve_app, name="valve")
app.add_typer(calibrate_app, name="calibrate")
app.add_typer(set_aside_app, name="set-aside")

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
DEFAULT_CONFIG = Path("/etc/ghgnet/station.toml")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="station config file (TOML)")]
SpeedOpt = Annotated[
    Optional[float], typer.Option(help="run the clock X times faster than real time (simulated time)")
]
StartOpt = Annotated[
    Optional[str], typer.Option(help="simulated start time (ISO 8601), to line up with a simulator")
]
AnchorOpt = Annotated[
    Optional[str],
    typer.Option(help="real instant (ISO 8601) at which simulated time is --start (default: now)"),
]


def _err(msg: str) -> None:
    # soft_wrap: an error names a file or a field path; broken across lines it cannot be grepped
    Console(stderr=True, soft_wrap=True).print(msg, style="bold red", markup=False, highlight=False)


def _load(config: Path):
    from station_agent.config import load_station_config

    try:
        return load_station_config(config)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        raise typer.Exit(EXIT_USAGE) from None


def _read_store(cfg):
    """The station database, read-only; exit 3 when there is none yet."""
    from station_agent.storage.store import StationStore, StoreError

    try:
        return StationStore(cfg.storage.path, read_only=True)
    except StoreError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_UNREACHABLE) from None


def _parse_time(text: str, what: str) -> datetime:
    from ghgnet.timeutil import parse_utc

    try:
        return parse_utc(text)
    except ValueError:
        _err(f"{what}: {text!r} is not an ISO 8601 time (e.g. 2026-11-22T00:00:00Z)")
        raise typer.Exit(EXIT_USAGE) from None


@app.command()
def run(config: ConfigOpt, speed: SpeedOpt = None, start: StartOpt = None, anchor: AnchorOpt = None) -> None:
    """Run the station daemon (what systemd runs). Stops cleanly on SIGTERM or Ctrl-C."""
    import faulthandler

    from ghgnet.clock import make_clock
    from ghgnet.logs import configure_logging
    from ghgnet.sdnotify import SdNotifier
    from station_agent.fleet.supervisor import Supervisor

    cfg = _load(config)
    configure_logging(cfg.station.id, cfg.logging.level, cfg.logging.format)
    faulthandler.enable()  # a watchdog SIGABRT dumps every thread's stack to the journal
    notifier = SdNotifier(unset_environment=True)
    clock = make_clock(speed, _parse_time(start, "--start") if start else None,
                       _parse_time(anchor, "--anchor") if anchor else None)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    Supervisor(config, cfg, clock, notifier).run(stop)  # the agent, restarted on central's pushed configs


@app.command()
def status(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """State, current stream and time left, devices, backlog, last minute, last calibration and
    target results, alarms: live from the daemon when it runs, else from the database.

    Exit 0 when the agent is running and every device answers, 1 when it is down or a device is
    in fault, 3 when there is no database yet.
    """
    import time


    cfg = _load(config)
    store = _read_store(cfg)
    try:
        state = store.get_state("agent")
        recent = store.event_rows(200)
        info = {
            "station": cfg.station.id,
            "store": store.store_id(),
            "database": str(cfg.storage.path),
            "counts": store.counts(),
            "outbox": store.outbox_stats(),
            "last_minute": store.last_minute(),
            "last_calibration": (store.calibrations() or [None])[-1],
            "last_target": (store.targets() or [None])[-1],
            "alarms": [e for e in recent if e["severity"] in ("warning", "error", "critical")][:10],
            "recent_events": recent[:5],
        }
    finally:
        store.close()
    live = _daemon(cfg, {"cmd": "status"}, required=False)
    agent = live["state"] if live and live.get("ok") else (state[0] if state else {})
    age = time.time() - agent.get("heartbeat_wall", time.time()) if live else (
        time.time() - agent.get("heartbeat_wall", 0) if agent else None)
    running = bool(live) or (age is not None and age < 30 and agent.get("state") in ("starting", "running"))
    info["state"] = agent.get("state", "unknown") if running else ("stopped" if agent else "never ran")
    info["via"] = "control socket" if live else "database"
    info["heartbeat_age_s"] = None if age is None else round(age, 1)
    info["agent"] = agent
    faults = any(d.get("faults") for d in agent.get("devices", {}).values())
    problem = not running or faults or bool((agent.get("engine") or {}).get("valve_faults"))
    if as_json:
        print(json.dumps(info, indent=2, default=str))
    else:
        _print_status(info)
    raise typer.Exit(EXIT_PROBLEM if problem else EXIT_OK)


def _print_status(info: dict) -> None:
    con = Console()
    colour = "green" if info["state"] == "running" else "red"
    beat = f" (last heartbeat {info['heartbeat_age_s']} s ago)" if info["via"] == "database" and \
        info["heartbeat_age_s"] is not None else ""
    con.print(f"[bold]{info['station']}[/] agent [{colour}]{info['state']}[/]{beat}")
    con.print(f"store {info['store'] or '(none yet)'}  database {info['database']}", markup=False, highlight=False)
    eng = info["agent"].get("engine")
    if eng:
        left = f", {eng['step_left_s'] / 60:.1f} min left" if eng.get("step_left_s") is not None else ""
        run = f" ({eng['run']['kind']} {eng['run']['name']})" if eng.get("run") else ""
        flush = " [yellow]flushing[/]" if eng.get("flushing") else ""
        con.print(f"stream [bold]{eng['stream']}[/]{run}{flush}{left}")
        if eng.get("maintenance"):
            con.print(f"[yellow]maintenance since {eng['maintenance']['since']}: {eng['maintenance']['reason']}[/]")
        if eng.get("interlocked"):
            con.print("[red]sequence suspended by an interlock[/]")
    devices = info["agent"].get("devices", {})
    if devices:
        t = Table("device", "driver", "connected", "last reading", "readings", "faults")
        for dev, d in devices.items():
            t.add_row(dev, d["driver"], "yes" if d["connected"] else "[red]no[/]", d["last_reading"] or "-",
                      str(d["readings"]), ", ".join(d["faults"]) or "-")
        con.print(t)
    c = info["counts"]
    con.print(f"raw {c['raw']}  minutes {c['minute']}  events {c['event']}  "
              f"backlog {info['outbox']['backlog']} (oldest {info['outbox']['oldest_unacked'] or '-'})")
    for name, u in (info["agent"].get("uplinks") or {}).items():
        con.print(f"HJ 212 uplink {name}: {'connected' if u['connected'] else '[red]not connected[/]'}, "
                  f"{u['backlog']} packet(s) waiting for 9014, {u['acked']} acknowledged")
    if c.get("set_aside"):
        con.print(f"[red]{c['set_aside']} record(s) set aside, not sent: station-agent set-aside list[/]")
    lm = info["last_minute"]
    if lm:
        for r in lm["records"]:
            vals = "  ".join(f"{sp} {s['mean']:.3f}" for sp, s in r["species"].items() if s["mean"] is not None)
            con.print(f"last minute {lm['time']} {r['device']} {r['stream']} [{r['flag']}] {vals}", markup=False)
    cal = info["last_calibration"]
    if cal:
        con.print(f"last calibration {cal['id']} ended {cal['time_end']}: " + ", ".join(
            f"{sp} rmse {f['rmse']:.4f}" for sp, f in cal["fits"].items()), markup=False)
    tgt = info["last_target"]
    if tgt:
        con.print(f"last target {tgt['cylinder']} {tgt['time']}: " + ", ".join(
            f"{sp} bias {b:+.3f}{'' if tgt['within_goal'].get(sp) else ' OUTSIDE GOAL'}"
            for sp, b in tgt["bias"].items() if b is not None), markup=False)
    for a in info["alarms"][:5]:
        con.print(f"[red]{a['time']} {a['severity']} {a['kind']}[/] {a['message']}")


@app.command()
def events(
    config: ConfigOpt = DEFAULT_CONFIG,
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recent events and alarms (faults, calibrations, maintenance, disk), newest first."""

    cfg = _load(config)
    store = _read_store(cfg)
    try:
        rows = store.event_rows(limit)
    finally:
        store.close()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table("time", "severity", "kind", "device", "message")
    colours = {"warning": "yellow", "error": "red", "critical": "red"}
    for e in rows:
        sev = e["severity"]
        t.add_row(e["time"], f"[{colours[sev]}]{sev}[/]" if sev in colours else sev, e["kind"], e["device"] or "",
                  e["message"])
    Console().print(t)


@app.command()
def records(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="every seq, as JSON")] = False,
) -> None:
    """What this station's database holds for central: per record kind the records stored (seq
    and what identifies each), the outbox (seqs central has not acknowledged yet) and the
    set-aside seqs. Reads the database file, so it works whether the agent runs or not.

    Exit 0; 3 when there is no database yet."""
    cfg = _load(config)
    store = _read_store(cfg)
    try:
        info = {
            "station": cfg.station.id,
            "store": store.store_id(),
            "database": str(cfg.storage.path),
            "records": store.record_identities(),
            "outbox": store.outbox_seqs(),
            "set_aside": [r["seq"] for r in store.set_aside_rows()],
        }
    finally:
        store.close()
    if as_json:
        print(json.dumps(info, separators=(",", ":")))
        return
    con = Console()
    con.print(f"{info['station']}  store {info['store'] or '(none yet)'}  database {info['database']}",
              markup=False, highlight=False)
    t = Table("records", "stored", "seqs", "unacknowledged")
    for kind, rows in info["records"].items():
        seqs = [r["seq"] for r in rows]
        t.add_row(kind, str(len(seqs)), f"{seqs[0]}..{seqs[-1]}" if seqs else "-", str(len(info["outbox"][kind])))
    con.print(t)
    if info["set_aside"]:
        con.print(f"set aside: {', '.join(map(str, info['set_aside']))}", markup=False)


@app.command()
def tail(
    config: ConfigOpt = DEFAULT_CONFIG,
    raw: Annotated[bool, typer.Option("--raw", help="also the newest raw reading of each device")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
    count: Annotated[Optional[int], typer.Option(help="stop after this many minute records")] = None,
) -> None:
    """Follow the live data: minute records as they are stored (and raw readings with --raw)."""
    import time as _time

    cfg = _load(config)
    reply = _daemon(cfg, {"cmd": "tail", "after_seq": 0})
    last = max([r["seq"] for r in reply.get("minutes", [])], default=0)
    # start from the newest few minutes
    shown = 0
    after = max(0, last - 3)
    con = Console()
    try:
        while count is None or shown < count:
            reply = _daemon(cfg, {"cmd": "tail", "after_seq": after})
            for r in reply.get("minutes", []):
                after = r["seq"]
                shown += 1
                if as_json:
                    print(json.dumps(r), flush=True)
                else:
                    vals = "  ".join(f"{sp} {v['mean']:.3f}" for sp, v in r["species"].items() if v["mean"] is not None)
                    con.print(f"{r['time']} {r['device']} {r['stream']:<14} [{r['flag']}] {vals} "
                              f"{';'.join(r['reasons'])}", markup=False)
                if count is not None and shown >= count:
                    break
            if raw:
                state = _daemon(cfg, {"cmd": "status"})["state"]
                for dev, d in state["devices"].items():
                    line = {"device": dev, "last_reading": d["last_reading"], "values": d.get("last_values")}
                    print(json.dumps(line), flush=True) if as_json else con.print(
                        f"  raw {dev} {d['last_reading']} " + "  ".join(
                            f"{k} {v:.3f}" for k, v in (d.get("last_values") or {}).items()
                            if isinstance(v, (int, float))), markup=False)
            _time.sleep(1.0)
    except KeyboardInterrupt:
        pass


@app.command()
def probe(
    device: Annotated[str, typer.Argument(help="device id from the config")],
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Connect to a device, read it once (without disturbing its data), report. Exit 0 if it
    answered, 1 if it did not."""
    from drivers.registry import load_driver
    from drivers.transport import TransportError

    cfg = _load(config)
    devices = {d.id: d for d in cfg.all_devices()}
    if device not in devices:
        _err(f"unknown device {device!r}; configured: {', '.join(devices) or '(none)'}")
        raise typer.Exit(EXIT_USAGE)
    dcfg = devices[device]
    running = _daemon(cfg, {"cmd": "status"}, required=False)
    if running and not dcfg.url.startswith(("socket://", "tcp://")):
        _err(f"the agent is running and holds {dcfg.url}; its view of {device}:")
        print(json.dumps(running["state"]["devices"].get(device, {}), indent=2, default=str))
        raise typer.Exit(EXIT_OK)
    cls = load_driver(dcfg.driver)
    drv = cls(dcfg, cls.make_transport(dcfg))
    try:
        drv.open()
        info = drv.identify()
        if cls.kind == "modbus":
            info["reading"] = drv.read().values
        elif cls.kind == "valve":
            info["position"] = drv.position()
        info["ok"] = True
    except (TransportError, Exception) as exc:  # report any failure to the technician, by name
        info = {"device": device, "url": dcfg.url, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        try:
            drv.close()
        except Exception:  # the link may already be gone
            pass
    if as_json:
        print(json.dumps(info, indent=2, default=str))
    else:
        con = Console()
        colour = "green" if info["ok"] else "red"
        con.print(f"[{colour}]{device}: {'answered' if info['ok'] else 'no answer'}[/]")
        for k, v in info.items():
            if k not in ("ok",):
                con.print(f"  {k}: {v}", markup=False)
    raise typer.Exit(EXIT_OK if info["ok"] else EXIT_PROBLEM)


def _export_highrate(config: Path, from_: str, to: str, fmt: str, device: str | None, out: Path | None) -> None:
    """A flux site's 10-20 Hz records of one device as a Campbell TOA5 file, for other tools."""
    from drivers.campbell.toa5 import write_toa5
    from station_agent.storage.export import highrate_table

    if fmt != "toa5" or device is None or out is None:
        _err("--level highrate: needs --format toa5, --device and --out")
        raise typer.Exit(EXIT_USAGE)
    cfg = _load(config)
    start, end = _parse_time(from_, "--from"), _parse_time(to, "--to")
    store = _read_store(cfg)
    try:
        table = highrate_table(store.highrate_blocks(start, end, device))
    finally:
        store.close()
    write_toa5(out, table, station_name=cfg.station.id, table_name=device)
    Console(stderr=True).print(f"{table.time.size} highrate records of {device} written to {out}")


@app.command()
def emissions(
    config: ConfigOpt,
    from_: Annotated[str, typer.Option("--from", help="start time, ISO 8601 (inclusive)")],
    to: Annotated[str, typer.Option("--to", help="end time, ISO 8601 (exclusive)")],
    by: Annotated[str, typer.Option(help="hour | day | month (UTC)")] = "day",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A stack CEMS's CO2 by hour, day or month from the station's store (works with the agent
    stopped): mass (t), operating time, operating/measured/substituted hours, availability."""
    from station_agent.emission.periods import PERIODS, emission_totals
    from station_agent.emission.worker import stamp

    if by not in PERIODS:
        _err(f"--by: {by!r} is not one of {', '.join(PERIODS)}")
        raise typer.Exit(EXIT_USAGE)
    cfg = _load(config)
    if cfg.cems is None:
        _err(f"{config}: this station has no [cems] table (not a stack CEMS)")
        raise typer.Exit(EXIT_USAGE)
    start, end = _parse_time(from_, "--from"), _parse_time(to, "--to")
    store = _read_store(cfg)
    try:
        hours = store.emission_rows("hour", stamp(start), stamp(end), cfg.cems.unit)
    finally:
        store.close()
    rows = [{"start": t.start, "mass_t": round(t.mass_t, 6), "operating_time_h": round(t.operating_time_h, 4),
             "operating_hours": t.operating_hours, "measured_hours": t.measured_hours,
             "substituted_hours": t.substituted_hours, "unfilled_hours": t.unfilled_hours,
             "availability_pct": round(t.availability * 100.0, 2)} for t in emission_totals(hours, by)]
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title=f"{cfg.cems.unit}: CO2 by {by}")
    for col in ("start", "CO2 t", "operating h", "measured h", "substituted h", "unfilled h", "availability %"):
        table.add_column(col, justify="left" if col == "start" else "right")
    for r in rows:
        table.add_row(r["start"], f"{r['mass_t']:.3f}", f"{r['operating_time_h']:.2f}", str(r["measured_hours"]),
                      str(r["substituted_hours"]), str(r["unfilled_hours"]), f"{r['availability_pct']:.2f}")
    Console().print(table)
    if rows:
        print(f"total: {sum(r['mass_t'] for r in rows):.3f} t CO2")


@app.command()
def export(
    config: ConfigOpt,
    from_: Annotated[str, typer.Option("--from", help="start time, ISO 8601 (inclusive)")],
    to: Annotated[str, typer.Option("--to", help="end time, ISO 8601 (exclusive)")],
    level: Annotated[str, typer.Option(help="raw | minute | calibration | highrate")] = "minute",
    fmt: Annotated[str, typer.Option("--format", help="csv | toa5 (highrate)")] = "csv",
    device: Annotated[Optional[str], typer.Option(help="only this device")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output file (default: standard output)")] = None,
) -> None:
    """Export raw readings, minute records, or calibration and target results as CSV
    (columns: see station_agent/storage/export.py)."""
    from station_agent.storage.export import write_calibration_csv, write_minute_csv, write_raw_csv

    if level == "highrate":
        _export_highrate(config, from_, to, fmt, device, out)
        return
    if level not in ("raw", "minute", "calibration"):
        _err(f"--level: {level!r} is not one of raw, minute, calibration, highrate")
        raise typer.Exit(EXIT_USAGE)
    if fmt != "csv":
        _err(f"--format: {fmt!r} is not supported (csv)")
        raise typer.Exit(EXIT_USAGE)
    cfg = _load(config)
    start, end = _parse_time(from_, "--from"), _parse_time(to, "--to")
    store = _read_store(cfg)
    fh = out.open("w", newline="") if out else sys.stdout
    try:
        if level == "minute":
            rows = store.minute_rows(start, end, device)
            if out:  # a progress bar on the terminal while a long export is written to a file
                from rich.progress import track

                rows = track(rows, total=store.minute_count(start, end), description="reading minutes",
                             console=Console(stderr=True), transient=True)
            n = write_minute_csv(list(rows), cfg.station.id, fh)
        elif level == "calibration":
            from ghgnet.timeutil import iso_utc

            cals = [c for c in store.calibrations(device, iso_utc(start), iso_utc(end))]
            tgts = [t for t in store.targets(iso_utc(start), iso_utc(end)) if not device or t["device"] == device]
            n = write_calibration_csv(cals, tgts, fh)
        else:
            quantities = store.raw_quantities(start, end, device)
            n = write_raw_csv(store.raw_rows(start, end, device), cfg.station.id, fh, quantities)
    finally:
        store.close()
        if out:
            fh.close()
    if out:
        Console(stderr=True).print(f"{n} {level} rows written to {out}")


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="station config file (TOML)")]) -> None:
    """Exit 0 if FILE is a valid station config; else exit 2, one `FILE: field.path: message` per error."""
    _load(file)
    print(f"{file}: ok")


@config_app.command("history")
def config_history(config: ConfigOpt = DEFAULT_CONFIG, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The configs central pushed and what became of each (verified, applied, healthy, rolled back,
    refused), the active version and the pin."""
    from station_agent.fleet.supervisor import history_for

    h = history_for(config, _load(config))
    info = {"active": h.active(), "pinned": h.pinned(), "steps": h.steps()}
    if as_json:
        print(json.dumps(info, indent=1))
        return
    print(f"active version {info['active']}" + (f", pinned to version {info['pinned']}" if info["pinned"] is not None
                                                  else ", not pinned"))
    for s in info["steps"]:
        print(f"{s['time']}  v{s['version']}  {s['step']}" + (f"  {s['detail']}" if s["detail"] else ""))


@config_app.command("pin")
def config_pin(
    version: Annotated[Optional[int], typer.Argument(help="version to pin (default: the active one)")] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    off: Annotated[bool, typer.Option("--off", help="unpin: take central's pushes again")] = False,
) -> None:
    """Pin a config version: central's pushes are refused (with an event) until `pin --off`. Pinning
    another version than the active one writes it over the config file: restart the daemon then."""
    from datetime import UTC

    from station_agent.fleet.config_history import write_atomically
    from station_agent.fleet.supervisor import history_for, load_station_config_text

    h = history_for(config, _load(config))
    now = datetime.now(UTC)
    if off:
        h.pin(None)
        h.note(now, h.active(), "unpinned", "by the technician")
        print("unpinned: central's pushes are taken again")
        return
    v = h.active() if version is None else version
    if v != h.active():
        if not h.version_path(v).exists():
            _err(f"no config version {v} kept in {h.folder}")
            raise typer.Exit(EXIT_USAGE)
        try:
            load_station_config_text(config, h.text_of(v))
        except ConfigError as exc:
            _err(f"version {v} is not valid here: {'; '.join(exc.lines)}")
            raise typer.Exit(EXIT_USAGE) from None
        write_atomically(config, h.text_of(v).encode())
        h.set_active(v)
        print(f"version {v} written to {config}: restart the daemon (systemctl restart station-agent)")
    h.pin(v)
    h.note(now, v, "pinned", "by the technician")
    print(f"pinned to version {v}")


@config_app.command("schema")
def config_schema(
    out: Annotated[Optional[Path], typer.Option(help="write here instead of standard output")] = None,
) -> None:
    """Write the JSON schema of the station config (kept in configs/station.schema.json)."""
    from ghgnet.config import write_schema
    from station_agent.config import station_schema

    write_schema(station_schema(), out)


@drivers_app.command("list")
def drivers_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The registered drivers (entry-point group ghgnet.drivers)."""
    from drivers.registry import all_drivers

    rows = [
        {"name": n, "kind": c.kind, "class": f"{c.__module__}.{c.__qualname__}", "simulator": c.simulator}
        for n, c in all_drivers().items()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table("driver", "kind", "class", "simulator")
    for r in rows:
        t.add_row(r["name"], r["kind"], r["class"], r["simulator"])
    Console().print(t)


def _daemon(cfg, request: dict, *, required: bool = True) -> dict | None:
    """Send a request to the running daemon; exit 3 (or return None) when it is not running."""
    from station_agent.service.control import ControlError, call

    try:
        reply = call(cfg.control_socket(), request)
    except ControlError as exc:
        if not required:
            return None
        _err(str(exc))
        raise typer.Exit(EXIT_UNREACHABLE) from None
    return reply


def _report(reply: dict, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(reply, indent=2, default=str))
    elif reply.get("ok"):
        Console().print(reply.get("message", "ok"), markup=False)
    else:
        _err(reply.get("error", "refused"))
    raise typer.Exit(EXIT_OK if reply.get("ok") else EXIT_PROBLEM)


@maintenance_app.command("on")
def maintenance_on(config: ConfigOpt = DEFAULT_CONFIG,
                   reason: Annotated[str, typer.Option(help="why (kept with the event)")] = "") -> None:
    """Flag everything from now on as maintenance and hold the sequence."""
    if not reason.strip():
        _err("--reason: say why (it is kept with the data), e.g. --reason 'filter change'")
        raise typer.Exit(EXIT_USAGE)
    _report(_daemon(_load(config), {"cmd": "maintenance", "on": True, "reason": reason}))


@maintenance_app.command("off")
def maintenance_off(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """End maintenance: the sequence resumes (with a fresh flush)."""
    _report(_daemon(_load(config), {"cmd": "maintenance", "on": False}))


@valve_app.command("goto")
def valve_goto(port: Annotated[int, typer.Argument(help="valve position")], config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Move the valve to PORT (maintenance mode only); the move is read back by the engine."""
    _report(_daemon(_load(config), {"cmd": "goto", "port": port}))


@calibrate_app.command("now")
def calibrate_now(name: Annotated[Optional[str], typer.Argument(help="run name (default: the first calibration)")] = None,
                  config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Start a calibration (or a named target, check or performance-test run) now, pre-empting the schedule."""
    _report(_daemon(_load(config), {"cmd": "calibrate", "name": name}))


@app.command()
def recalibrate(
    config: ConfigOpt,
    from_: Annotated[str, typer.Option("--from", help="start time, ISO 8601")],
    to: Annotated[str, typer.Option("--to", help="end time, ISO 8601")],
) -> None:
    """Reprocess minutes with coefficients interpolated in time between the bracketing
    calibrations; reprocessed minutes go to central again under new seqs."""
    cfg = _load(config)
    start, end = _parse_time(from_, "--from"), _parse_time(to, "--to")
    reply = _daemon(cfg, {"cmd": "recalibrate", "from": start.isoformat(), "to": end.isoformat()}, required=False)
    if reply is None:
        from ghgnet.clock import make_clock
        from station_agent.agent import Agent
        from station_agent.storage.store import StationStore

        agent = Agent(cfg, make_clock())
        store = StationStore(cfg.storage.path)  # the daemon is down: we are the only writer
        try:
            agent.book.load(store)
            n = agent.recalibrate(store, start, end)
        finally:
            store.close()
        reply = {"ok": True, "message": f"{n} minute records reprocessed (agent not running: done directly)"}
    _report(reply)


def _cylinder_table(rows: list[dict]) -> Table:
    t = Table("id", "role", "assigned", "scale", "pressure bar", "fill date", "retired")
    for c in rows:
        t.add_row(c["id"], c["role"], " ".join(f"{sp}={v:g}" for sp, v in c["assigned"].items()),
                  " ".join(f"{sp}:{v}" for sp, v in c["scale"].items()),
                  "-" if c["pressure_bar"] is None else f"{c['pressure_bar']:g}", c["fill_date"] or "-",
                  c["retired"] or "")
    return t


@cylinders_app.command("list")
def cylinders_list(config: ConfigOpt = DEFAULT_CONFIG, all_: Annotated[bool, typer.Option("--all", help="include retired")] = False,
                   as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The cylinders in the registry."""

    cfg = _load(config)
    store = _read_store(cfg)
    try:
        rows = store.cylinders(include_retired=all_)
    finally:
        store.close()
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        Console().print(_cylinder_table(rows))


@cylinders_app.command("add")
def cylinders_add(
    cylinder_id: Annotated[str, typer.Argument(help="cylinder id or serial, e.g. CAL-1")],
    role: Annotated[str, typer.Option(help="standard | target | zero | span")],
    value: Annotated[list[str], typer.Option("--value", help="assigned value, SPECIES=VALUE (ppm CO2, ppb others); repeat")],
    config: ConfigOpt = DEFAULT_CONFIG,
    scale: Annotated[list[str], typer.Option("--scale", help="SPECIES=SCALE (default: current WMO scales)")] = [],
    uncertainty: Annotated[list[str], typer.Option("--uncertainty", help="SPECIES=U")] = [],
    serial: str = "",
    fill_date: Annotated[Optional[str], typer.Option(help="YYYY-MM-DD")] = None,
    pressure_bar: Optional[float] = None,
) -> None:
    """Add (or update) a cylinder with its assigned values and their scale."""
    from pydantic import ValidationError

    from station_agent.sequencing.sampling_config import DEFAULT_SCALES, CylinderConfig

    def pairs(items: list[str], what: str, number: bool) -> dict:
        out = {}
        for item in items:
            key, sep, val = item.partition("=")
            if not sep or not key:
                _err(f"{what}: {item!r} is not SPECIES=VALUE")
                raise typer.Exit(EXIT_USAGE)
            try:
                out[key.strip().lower()] = float(val) if number else val.strip()
            except ValueError:
                _err(f"{what}: {val!r} is not a number")
                raise typer.Exit(EXIT_USAGE) from None
        return out

    cfg = _load(config)
    assigned = pairs(value, "--value", True)
    try:
        cyl = CylinderConfig(id=cylinder_id, role=role, serial=serial, assigned=assigned,
                             uncertainty=pairs(uncertainty, "--uncertainty", True),
                             scale={sp: DEFAULT_SCALES.get(sp, "") for sp in assigned} | pairs(scale, "--scale", False),
                             fill_date=fill_date, pressure_bar=pressure_bar)
    except ValidationError as exc:
        for e in exc.errors(include_url=False):
            _err(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}")
        raise typer.Exit(EXIT_USAGE) from None
    reply = _daemon(cfg, {"cmd": "cylinder_add", "cylinder": cyl.model_dump(mode="json")}, required=False)
    if reply is None:
        from ghgnet.clock import make_clock
        from station_agent.storage.store import StationStore

        store = StationStore(cfg.storage.path)  # the daemon is down: we are the only writer
        try:
            store.upsert_cylinder(cyl.model_dump(), make_clock().now())
        finally:
            store.close()
        reply = {"ok": True, "message": f"cylinder {cyl.id} stored (agent not running: written directly)"}
    _report(reply)


@cylinders_app.command("retire")
def cylinders_retire(cylinder_id: Annotated[str, typer.Argument()], config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Retire a cylinder (kept in the registry with its retirement date)."""
    cfg = _load(config)
    reply = _daemon(cfg, {"cmd": "cylinder_retire", "id": cylinder_id}, required=False)
    if reply is None:
        from ghgnet.clock import make_clock
        from station_agent.storage.store import StationStore

        store = StationStore(cfg.storage.path)
        try:
            ok = store.retire_cylinder(cylinder_id, make_clock().now())
        finally:
            store.close()
        reply = {"ok": ok, "message": f"cylinder {cylinder_id} retired"} if ok else \
            {"ok": False, "error": f"no active cylinder {cylinder_id!r}"}
    _report(reply)


@cylinders_app.command("assign")
def cylinders_assign(
    cylinder_id: Annotated[str, typer.Argument(help="the new working standard (a cal:<id> or target:<id> stream)")],
    references: Annotated[str, typer.Option("--references", help="reference cylinder ids, comma-separated, >= 2")],
    cycles: Annotated[int, typer.Option(help="candidate injections, each bracketed by the references")] = 6,
    measure_s: Annotated[float, typer.Option("--measure-s", help="seconds on each cylinder, flush included")] = 1800.0,
    last_minutes: Annotated[int, typer.Option(help="minutes kept at the end of each injection")] = 10,
    device: Annotated[Optional[str], typer.Option(help="the analyzer that assigns (default: each on the valve)")] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Assign values to a new working standard against the station's references: it is measured in
    repeated cycles bracketed by them; its values, standard uncertainty and chain of references go
    to the registry (`cylinders show`) and to central as a cylinder.assigned event."""
    refs = [r.strip() for r in references.split(",") if r.strip()]
    request = {"cmd": "assign", "candidate": cylinder_id, "references": refs, "cycles": cycles,
               "measure_s": measure_s, "use_last_minutes": last_minutes}
    if device:
        request["device"] = device
    _report(_daemon(_load(config), request))


@cylinders_app.command("show")
def cylinders_show(cylinder_id: Annotated[str, typer.Argument()], config: ConfigOpt = DEFAULT_CONFIG,
                   as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One cylinder: its assigned values with their uncertainty and scale, and the chain of
    references its values trace to."""
    cfg = _load(config)
    store = _read_store(cfg)
    try:
        row = next((c for c in store.cylinders(include_retired=True) if c["id"] == cylinder_id), None)
    finally:
        store.close()
    if row is None:
        _err(f"no cylinder {cylinder_id!r} in the registry")
        raise typer.Exit(EXIT_PROBLEM)
    if as_json:
        print(json.dumps(row, indent=2))
        raise typer.Exit(EXIT_OK)
    con = Console()
    con.print(f"{row['id']} ({row['role']}) serial {row['serial'] or '-'}"
              + (f", retired {row['retired']}" if row["retired"] else ""), markup=False)
    for sp, v in row["assigned"].items():
        u = row["uncertainty"].get(sp)
        con.print(f"  {sp} {v:.4f}" + (f" +- {u:.4f}" if u is not None else "")
                  + f"  {row['scale'].get(sp, '')}", markup=False)
    trace = row.get("traceability") or {}
    if not trace:
        con.print("  traceability: entered by hand (no value assignment recorded)", markup=False)
    for line in _chain_lines(trace, "  "):
        con.print(line, markup=False)


def _chain_lines(trace: dict, indent: str) -> list[str]:
    if not trace:
        return []
    out = [f"{indent}assigned {trace.get('assigned_at', '?')} by {trace.get('device', '?')} "
           f"({trace.get('cycles', '?')} cycles, {trace.get('start', '?')} .. {trace.get('end', '?')}) against:"]
    for sp, b in (trace.get("budget") or {}).items():
        out.append(f"{indent}  {sp}: u(references) {b['u_references']:.4f}, u(fit) {b['u_fit']:.4f},"
                   f" u(repeatability) {b['u_repeatability']:.4f}")
    if trace.get("references_without_uncertainty"):
        out.append(f"{indent}  (no uncertainty in the registry, counted 0: "
                   f"{', '.join(trace['references_without_uncertainty'])})")
    for ref in trace.get("references", []):
        vals = ", ".join(f"{sp} {v:g} +- {ref['uncertainty'].get(sp, 0):g} ({ref['scale'].get(sp, '')})"
                         for sp, v in ref["assigned"].items())
        out.append(f"{indent}  <- {ref['id']}: {vals}")
        for inner in ref.get("chain") or []:
            out += _chain_lines(inner, indent + "    ")
    return out


SeqArgs = Annotated[Optional[list[int]], typer.Argument(help="seqs (default: every set-aside record)")]


def _set_aside_rows(cfg, seqs: list[int] | None, records: bool) -> list[dict]:
    """The set-aside records, from the daemon when it runs, else from the database."""
    reply = _daemon(cfg, {"cmd": "set_aside_list", "seqs": seqs, "records": records}, required=False)
    if reply is not None:
        if not reply.get("ok"):
            _report(reply)
        return reply["set_aside"]
    store = _read_store(cfg)
    try:
        return store.set_aside_rows(seqs, with_payload=records)
    finally:
        store.close()


@set_aside_app.command("list")
def set_aside_list(seqs: SeqArgs = None, config: ConfigOpt = DEFAULT_CONFIG,
                   as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The set-aside records: seq, kind, size, when and why."""
    rows = _set_aside_rows(_load(config), seqs or None, False)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table("seq", "kind", "bytes", "stored", "set aside", "why")
    for r in rows:
        t.add_row(str(r["seq"]), r["kind"], str(r["bytes"]), r["created"], r["set_aside"], r["reason"])
    Console().print(t)
    if not rows:
        Console().print("no record is set aside")


@set_aside_app.command("export")
def set_aside_export(seqs: SeqArgs = None, config: ConfigOpt = DEFAULT_CONFIG,
                     out: Annotated[Optional[Path], typer.Option(help="output file (default: standard output)")] = None,
                     ) -> None:
    """The set-aside records as JSON lines, each with the record itself under `record` (as it
    would travel, without its seq), to read, mend or hand over by other means."""
    rows = _set_aside_rows(_load(config), seqs or None, True)
    fh = out.open("w") if out else sys.stdout
    try:
        for r in rows:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    finally:
        if out:
            fh.close()
    if out:
        Console(stderr=True).print(f"{len(rows)} set-aside record(s) written to {out}")


@set_aside_app.command("retry")
def set_aside_retry(seqs: SeqArgs = None, config: ConfigOpt = DEFAULT_CONFIG,
                    all_: Annotated[bool, typer.Option("--all", help="every set-aside record")] = False) -> None:
    """Put set-aside records back in the outbox under their own seq, to be sent again (say after
    raising the broker's message_size_limit and forwarding.max_message_bytes). A record that still
    cannot be sent is set aside again, with a new alarm."""
    if not seqs and not all_:
        _err("name the seqs to retry, or give --all")
        raise typer.Exit(EXIT_USAGE)
    cfg = _load(config)
    wanted = None if all_ else seqs
    reply = _daemon(cfg, {"cmd": "set_aside_retry", "seqs": wanted}, required=False)
    if reply is None:
        from ghgnet.clock import make_clock
        from station_agent.agent import retry_set_aside
        from station_agent.storage.store import StationStore

        store = StationStore(cfg.storage.path)  # the daemon is down: we are the only writer
        try:
            back = retry_set_aside(store, wanted, make_clock().now())
        finally:
            store.close()
        reply = {"ok": True, "seqs": back,
                 "message": f"{len(back)} set-aside record(s) back in the outbox (agent not running: written directly)"}
    if reply.get("ok") and wanted is not None and len(reply["seqs"]) < len(set(wanted)):
        missing = sorted(set(wanted) - set(reply["seqs"]))
        reply = {"ok": False, "error": f"{reply['message']}; not set aside: {', '.join(map(str, missing[:20]))}"}
    _report(reply)


@app.command()
def demo(
    hours: Annotated[float, typer.Option(help="simulated hours to run")] = 24.0,
    speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 1440.0,
    run_dir: Annotated[Optional[Path], typer.Option(help="keep the run's files here (default: a temporary folder)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    start: Annotated[Optional[str], typer.Option(
        help="simulated start time (ISO 8601 UTC; default: now). Calibrations fall every 6 simulated"
             " hours from midnight UTC, so the start decides how many a short run holds")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="afterwards keep central's operations center up on the "
                                        "demo's data (prints its URL and a login) until Ctrl-C")] = False,
) -> None:
    """Broker, simulators, station agent and central receiver in one go, then a summary.

    Exit 0 when central holds every record the station produced, exactly once; 1 otherwise;
    3 when a part cannot run (e.g. mosquitto is not installed)."""
    from simulators.network import DemoError, format_summary, run_demo

    if hours <= 0 or speed <= 0:
        _err("--hours and --speed must be > 0")
        raise typer.Exit(EXIT_USAGE)
    if serve and run_dir is None:  # the data must outlive the run
        import tempfile

        run_dir = Path(tempfile.mkdtemp(prefix="ghgnet-demo-"))
    try:
        summary = run_demo(hours, speed, run_dir, progress=(lambda m: None) if as_json else
                           (lambda m: Console(stderr=True).print(m, markup=False, highlight=False)),
                           start=_parse_time(start, "--start") if start else None)
    except DemoError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_UNREACHABLE) from None
    print(json.dumps(summary, indent=2, default=str) if as_json else format_summary(summary), flush=True)
    code = EXIT_OK if summary["lost"] == 0 and summary["duplicates"] == 0 else EXIT_PROBLEM
    if serve:
        assert run_dir is not None
        _serve_demo(run_dir / "central.toml")
    raise typer.Exit(code)


def _serve_demo(config: Path) -> None:
    """The demo's central, aggregated, served by `central-receiver serve` with a fresh admin login,
    until Ctrl-C (central is its own program: the agent imports none of it)."""
    import secrets
    import signal
    import subprocess

    receiver = str(Path(sys.executable).parent / "central-receiver")
    password = secrets.token_urlsafe(9)
    subprocess.run([receiver, "aggregate", "--config", str(config)], check=True, capture_output=True)
    subprocess.run([receiver, "users", "remove", "--config", str(config), "demo"], capture_output=True)
    subprocess.run([receiver, "users", "add", "--config", str(config), "demo", "--role", "admin", "--password-stdin"],
                   input=password + "\n", text=True, check=True, capture_output=True)
    proc = subprocess.Popen([receiver, "serve", "--config", str(config), "--port", "0"], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        _err(f"central-receiver serve did not start (exit {proc.wait()})")
        raise typer.Exit(EXIT_UNREACHABLE)
    url = json.loads(line)["url"]
    print(json.dumps({"url": url, "user": "demo", "password": password, "config": str(config)}), flush=True)
    Console(stderr=True).print(f"operations center: {url}  (log in as demo / {password}; Ctrl-C stops it)",
                               markup=False, highlight=False)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
