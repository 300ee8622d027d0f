"""A demo-like network in a central store, written through the real ingest path: several stations
with two inlets each, diurnal CO2/CH4 with noise and a few spikes, calibrations, short- and
long-term targets, and status messages. Deterministic (seeded)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from central.ingest import Ingestor, Message
from ghgnet.wire import (
    CalibrationWire,
    FitWire,
    MinuteWire,
    SpeciesStats,
    StandardWire,
    StatusMessage,
    TargetWire,
    encode_batch,
    encode_status,
)

START = datetime(2026, 3, 1, tzinfo=UTC)
STATIONS: dict[str, dict[str, Any]] = {
    "bg-north": {"role": "background", "timezone": "Asia/Shanghai", "latitude": 41.0, "longitude": 117.0,
                 "altitude_m": 300.0, "offset": 0.0},
    "bg-south": {"role": "background", "timezone": "Asia/Shanghai", "latitude": 30.0, "longitude": 119.0,
                 "altitude_m": 120.0, "offset": 0.5},
    "city-1": {"role": "urban", "timezone": "Asia/Shanghai", "latitude": 39.9, "longitude": 116.4,
               "altitude_m": 50.0, "offset": 8.0},
}


def central_stations_toml() -> str:
    out = []
    for name, s in STATIONS.items():
        out.append(f'[stations.{name}]\nrole = "{s["role"]}"\ntimezone = "{s["timezone"]}"\n'
                   f'latitude = {s["latitude"]}\nlongitude = {s["longitude"]}\naltitude_m = {s["altitude_m"]}\n'
                   f'long_term_targets = ["TGT-LT"]\ninstrument_id = "G2401-{name}"\n')
    return "\n".join(out)


def station_config() -> dict[str, Any]:
    return {name: {k: v for k, v in s.items() if k != "offset"} | {"long_term_targets": ["TGT-LT"]}
            for name, s in STATIONS.items()}


def fill_network(store, days: int = 3, now: datetime | None = None, seed: int = 3) -> dict[str, Any]:
    """Store `days` days of data for every station; returns what was stored (seqs per station)."""
    rng = np.random.default_rng(seed)
    sent = now or START + timedelta(days=days)
    ingest = Ingestor(store, now=lambda: sent)
    info: dict[str, Any] = {}
    for k, (name, s) in enumerate(STATIONS.items()):
        seq = 0
        minutes: list[MinuteWire] = []
        n = days * 1440
        t = np.arange(n)
        base = 420.0 + s["offset"] + 6.0 * np.sin(2 * np.pi * (t / 1440.0 - 0.3))
        for inlet, dz in (("inlet:100m", 0.0), ("inlet:10m", 2.0)):
            co2 = base + dz + rng.normal(0, 0.15, n)
            co2[rng.choice(n, 20, replace=False)] += rng.uniform(3, 8, 20)
            ch4 = 2000.0 + 5 * s["offset"] + 20 * np.sin(2 * np.pi * t / 1440.0) + rng.normal(0, 1.0, n)
            # every 3rd station-minute belongs to one inlet, a few to calibrations: real duty cycles
            for i in range(0 if inlet == "inlet:100m" else 1, n, 2):
                if k == 2 and i // 1440 == days - 1 and i % 1440 > 600:
                    continue  # the urban station lost part of its last day: completeness < 1
                seq += 1
                minutes.append(MinuteWire(
                    seq=seq, time=START + timedelta(minutes=int(i)), device="g2401", stream=inlet,
                    species={
                        "co2": SpeciesStats(mean=float(co2[i]), std=0.1, n=55, raw_mean=float(co2[i]) - 0.3,
                                            cal_mean=float(co2[i])),
                        "ch4": SpeciesStats(mean=float(ch4[i]), std=0.8, n=55, raw_mean=float(ch4[i]) - 1,
                                            cal_mean=float(ch4[i])),
                    },
                    h2o=1.0, flag="U" if i % 97 else "N", reasons=[] if i % 97 else ["flush"], n_total=60,
                    calibration_id="cal-1"))
        msgs = [Message(f"ghg/v1/{name}/minute", encode_batch(name, "minute", minutes[j:j + 500], sent))
                for j in range(0, len(minutes), 500)]
        cal_recs: list[Any] = []
        for d in range(days):
            seq += 1
            t0 = START + timedelta(days=d, hours=2)
            drift = 0.02 * d * (1 + k)
            cal_recs.append(CalibrationWire(
                seq=seq, record_type="calibration", id=f"cal-{d}", time_start=t0, time_end=t0 + timedelta(hours=2),
                standards=[StandardWire(cylinder=f"CAL-{c}", measured={"co2": v - 0.3}, assigned={"co2": v},
                                        scale={"co2": "WMO-CO2-X2019"}) for c, v in (("A", 380.0), ("B", 450.0))],
                fits={"co2": FitWire(coefficients=[0.3 + drift, 1.0], residuals=[0.01, -0.02, 0.01],
                                     r2=0.99999, rmse=0.015, n=3)}))
            seq += 1
            cal_recs.append(TargetWire(
                seq=seq, record_type="target", id=f"lt-{d}", time=t0 + timedelta(hours=2, minutes=10),
                cylinder="TGT-LT", measured={"co2": 410.0 + drift}, assigned={"co2": 410.0},
                bias={"co2": drift}, within_goal={"co2": abs(drift) <= 0.1}))
            for h in range(0, 24, 6):
                seq += 1
                b = float(rng.normal(0.03 * (k - 1), 0.04))
                cal_recs.append(TargetWire(
                    seq=seq, record_type="target", id=f"st-{d}-{h}", time=START + timedelta(days=d, hours=h + 1),
                    cylinder="TGT-ST", measured={"co2": 430.0 + b}, assigned={"co2": 430.0}, bias={"co2": b},
                    within_goal={"co2": abs(b) <= 0.1}))
        msgs.append(Message(f"ghg/v1/{name}/calibration", encode_batch(name, "calibration", cal_recs, sent)))
        status = StatusMessage(station=name, state="up", time=sent, backlog=3 * k, oldest_unacked_age_s=5.0 * k,
                               agent_version="0.1.0", interval_s=30.0, last_seq=seq,
                               details={"stream": "inlet:100m", "maintenance": False,
                                        "devices": {"g2401": {"connected": True, "faults": []}}})
        msgs.append(Message(f"ghg/v1/{name}/status", encode_status(status)))
        ingest.handle(msgs)
        info[name] = {"last_seq": seq, "minutes": len(minutes)}
    return info
