"""Two hosts on one machine: Linux network namespaces joined by a veth pair, and the faults of a
bad cellular link between them (random drops with nftables, a narrow pipe with a tbf token
bucket, the link set down and up).

Needs root and the `ip`, `nft` and `tc` commands (`./dev test` installs iproute2 and nftables).
Names carry a per-run tag, so two runs on one machine never meet. Only addresses inside the two
namespaces (10.213.0.0/30) are used. Latency is not added here: this machine's kernel has no
netem (`tc qdisc add ... netem` answers "Specified qdisc kind is unknown" and there is no modprobe),
so a delaying TCP relay (support/relay.py) adds it on the station's side instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = {"ip": "iproute2", "nft": "nftables", "tc": "iproute2"}
SUBNET_PREFIX = 30


@dataclass(frozen=True)
class LinkFaults:
    """A bad link: random loss each way, a narrow pipe each way, latency each way (the relay's)."""

    loss_percent: int
    rate_kbit: int
    delay_ms: float


CELLULAR = LinkFaults(loss_percent=5, rate_kbit=256, delay_ms=100.0)


class NetnsError(RuntimeError):
    """A namespace, link or rule could not be made; the message says which command failed and why."""


def run(args: list[str], input: str | None = None) -> str:
    """Run a command (no shell); its stdout, or NetnsError with the command and its stderr."""
    try:
        proc = subprocess.run(args, input=input, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"`{' '.join(args)}` failed: {exc}") from exc
    if proc.returncode != 0:
        raise NetnsError(f"`{' '.join(args)}` failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def missing_prerequisites() -> list[str]:
    """Why namespaces cannot be made here (empty when they can): not root, commands missing."""
    why = []
    if os.geteuid() != 0:
        why.append(f"not root (uid {os.geteuid()}): network namespaces need CAP_NET_ADMIN")
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            why.append(f"`{tool}` not found (Debian package {package}; ./dev test installs it)")
    return why


def run_tag() -> str:
    """A tag unique to this run, short enough for interface names (15 characters at most)."""
    return f"{os.getpid() % 0x10000:04x}{secrets.token_hex(2)}"


@dataclass
class Host:
    """One namespace with its end of the veth pair."""

    netns: str
    veth: str
    address: str

    @property
    def prefix(self) -> list[str]:
        """What runs a command inside this namespace (`ip netns exec` execs the command: its pid
        is the command's, so signals reach it)."""
        return ["ip", "netns", "exec", self.netns]

    def run(self, *args: str, input: str | None = None) -> str:
        return run([*self.prefix, *args], input=input)

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()] if out.returncode == 0 else []


@dataclass
class Outage:
    down_at: float
    up_at: float | None = None


@dataclass
class Link:
    """A station host and a central host (namespaces) joined by a veth pair on 10.213.0.0/30.

    `create()` makes them (and raises NetnsError naming the failing command); `close()` kills
    whatever still runs inside and deletes both namespaces, which takes the veth pair, the nft
    tables and the qdiscs with them. Safe to call twice, and after a failed `create()`."""

    tag: str = field(default_factory=run_tag)

    def __post_init__(self) -> None:
        self.station = Host(f"ghgnet-{self.tag}-station", f"gh{self.tag}s", "10.213.0.1")
        self.central = Host(f"ghgnet-{self.tag}-central", f"gh{self.tag}c", "10.213.0.2")
        self.outages: list[Outage] = []
        self._created: list[Host] = []
        self._flapper: threading.Thread | None = None
        self._stop_flapping = threading.Event()
        self._flap_error: NetnsError | None = None

    @property
    def hosts(self) -> tuple[Host, Host]:
        return self.station, self.central

    def create(self) -> Link:
        why = missing_prerequisites()
        if why:
            raise NetnsError("cannot make network namespaces: " + "; ".join(why))
        for host in self.hosts:
            run(["ip", "netns", "add", host.netns])
            self._created.append(host)
        run(["ip", "link", "add", self.station.veth, "netns", self.station.netns, "type", "veth",
             "peer", "name", self.central.veth, "netns", self.central.netns])
        for host in self.hosts:
            # One segment a packet, as on a radio link: without this the stack hands the veth
            # 64 KB segmentation-offload packets, and a "dropped packet" would be dozens.
            host.run("ip", "link", "set", host.veth, "gso_max_segs", "1")
            host.run("ip", "addr", "add", f"{host.address}/{SUBNET_PREFIX}", "dev", host.veth)
            host.run("ip", "link", "set", "lo", "up")
            host.run("ip", "link", "set", host.veth, "up")
        return self

    # -- impairments ----------------------------------------------------------------------------
    def drop_randomly(self, percent: int) -> None:
        """Drop `percent` % of the packets arriving on each end, at random (both directions lose
        packets on the wire, as a radio link does; the sender's stack does not know)."""
        for host in self.hosts:
            host.run("nft", "-f", "-", input=(
                f"table inet ghgnet_{self.tag} {{\n"
                "  chain lossy_link {\n"
                "    type filter hook prerouting priority raw; policy accept;\n"
                f'    iifname "{host.veth}" counter\n'
                f'    iifname "{host.veth}" numgen random mod 100 < {int(percent)} counter drop\n'
                "  }\n"
                "}\n"))

    def packets(self) -> dict[str, tuple[int, int]]:
        """(arrived, dropped) packets so far on each host's end of the link."""
        out = {}
        for host in self.hosts:
            text = host.run("nft", "list", "chain", "inet", f"ghgnet_{self.tag}", "lossy_link")
            counts = [int(line.split("counter packets", 1)[1].split()[0])
                      for line in text.splitlines() if "counter packets" in line]
            out[host.netns] = (counts[0], counts[1])
        return out

    def shape(self, rate_kbit: int, burst_bytes: int = 8192, queue_ms: int = 400) -> None:
        """A narrow pipe: each end sends at most `rate_kbit` (tbf), queueing up to `queue_ms`."""
        for host in self.hosts:
            host.run("tc", "qdisc", "replace", "dev", host.veth, "root", "tbf", "rate", f"{rate_kbit}kbit",
                     "burst", str(burst_bytes), "latency", f"{queue_ms}ms")

    def set_up(self, up: bool) -> None:
        """Carrier on or off: the station's end of the pair set up or down (the peer loses its
        carrier with it); addresses stay, routes come back with the link."""
        self.station.run("ip", "link", "set", self.station.veth, "up" if up else "down")

    def start_flapping(self, period_s: float, down_s: float, first_down_after_s: float) -> None:
        """From a thread: the link down for `down_s` every `period_s` real seconds, the first
        outage `first_down_after_s` from now; `stop_flapping()` ends it with the link up.
        `outages` records when each began and ended (time.monotonic())."""
        self._stop_flapping.clear()
        self._flapper = threading.Thread(target=self._flap, args=(period_s, down_s, first_down_after_s),
                                         name="link-flapper", daemon=True)
        self._flapper.start()

    def _flap(self, period_s: float, down_s: float, first_down_after_s: float) -> None:
        next_down = time.monotonic() + first_down_after_s
        try:
            while not self._stop_flapping.wait(max(0.0, next_down - time.monotonic())):
                self.set_up(False)
                outage = Outage(time.monotonic())
                self.outages.append(outage)
                self._stop_flapping.wait(down_s)
                self.set_up(True)
                outage.up_at = time.monotonic()
                next_down = outage.down_at + period_s
        except NetnsError as exc:
            self._flap_error = exc

    def stop_flapping(self) -> None:
        """End the outages (the link is up again); raises what stopped the thread, if anything did."""
        self._stop_flapping.set()
        if self._flapper is not None:
            self._flapper.join(30)
            self._flapper = None
        error, self._flap_error = self._flap_error, None
        if error is not None:
            raise NetnsError(f"the link could not be set down or up: {error}")

    # -- cleanup --------------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.stop_flapping()
        except NetnsError:
            pass  # deleting the namespaces is what matters now
        for host in self._created:
            for pid in host.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        errors = []
        for host in self._created:
            proc = subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, text=True)
            if proc.returncode != 0 and Path(f"/run/netns/{host.netns}").exists():
                errors.append(f"{host.netns}: {proc.stderr.strip()}")
        self._created.clear()
        if errors:
            raise NetnsError("could not delete namespaces: " + "; ".join(errors))
