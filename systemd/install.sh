#!/usr/bin/env bash
# Install ghgnet as a systemd service on a station PC (or a central server, or a bench PC).
#
#   sudo systemd/install.sh [--dry-run] [--central] [--bench NAME] [--now] [--prefix DIR] [--python PY]
#
# What it does (every step is safe to repeat; configs that exist are never overwritten):
#   1. the system user `ghgnet` (group ghgnet, supplementary group dialout for the serial ports);
#   2. a virtualenv in PREFIX/.venv (default /opt/ghgnet/.venv) with ghgnet installed from this
#      source tree (pip install --upgrade: a re-run updates the code), with --central its central
#      extras;
#   3. /etc/ghgnet (root:ghgnet 0750) with station.toml from configs/station.example.toml, its
#      database path set to /var/lib/ghgnet/station.sqlite;  --central adds central.toml
#      (/var/lib/ghgnet-central/central.sqlite);  --bench NAME adds bench/NAME.toml;
#   4. /var/lib/ghgnet (ghgnet:ghgnet 0750);
#   5. the unit files in /etc/systemd/system, daemon-reload, enable (and start with --now).
# --dry-run prints each command instead of running it and changes nothing.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/opt/ghgnet
PYTHON=python3
ETC=/etc/ghgnet
STATE=/var/lib/ghgnet
UNIT_DIR=/etc/systemd/system
USER_NAME=ghgnet
DRY_RUN=0
CENTRAL=0
BENCH=""
START=0

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --central) CENTRAL=1 ;;
        --bench) BENCH="${2:?--bench needs a name}"; shift ;;
        --now) START=1 ;;
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift ;;
        --python) PYTHON="${2:?--python needs an interpreter}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [ -n "$BENCH" ] && ! [[ "$BENCH" =~ ^[a-z0-9][a-z0-9_-]*$ ]]; then
    echo "install.sh: bench name must be lower-case letters, digits, - and _" >&2
    exit 2
fi
VENV="$PREFIX/.venv"

run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '+'; printf ' %q' "$@"; printf '\n'
    else
        "$@"
    fi
}

note() { printf '== %s\n' "$*"; }

# install_config EXAMPLE TARGET SED_EXPR EXPECT: copy an example config once, rewriting its paths;
# EXPECT must appear in the result, so a changed example cannot silently keep a relative path.
install_config() {
    local example="$1" target="$2" expr="$3" expect="$4"
    if [ -e "$target" ]; then
        note "$target exists, kept"
        return
    fi
    local tmp
    tmp="$(mktemp)"
    sed -E "$expr" "$example" > "$tmp"
    if ! grep -qF "$expect" "$tmp"; then
        rm -f "$tmp"
        echo "install.sh: could not set the paths in $target from $example (looked for: $expect)" >&2
        exit 1
    fi
    run install -o root -g "$USER_NAME" -m 0640 "$tmp" "$target"
    rm -f "$tmp"
}

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (or with --dry-run to see what it would do)" >&2
    exit 1
fi
[ -f "$SRC/pyproject.toml" ] || { echo "install.sh: $SRC is not the ghgnet source tree" >&2; exit 1; }

note "user $USER_NAME (groups: dialout)"
if ! getent group dialout > /dev/null; then
    run groupadd --system dialout
fi
if id "$USER_NAME" > /dev/null 2>&1; then
    run usermod --append --groups dialout "$USER_NAME"
else
    run useradd --system --user-group --groups dialout --home-dir "$STATE" --no-create-home \
        --shell /usr/sbin/nologin --comment "ghgnet station software" "$USER_NAME"
fi

note "ghgnet into $VENV from $SRC"
run install -d -m 0755 "$PREFIX"
if [ ! -x "$VENV/bin/python" ]; then
    run "$PYTHON" -m venv "$VENV"
fi
# a station needs ghgnet alone; a central server the central extras (inversion, PostgreSQL)
if [ "$CENTRAL" = 1 ]; then WHAT="$SRC[central]"; else WHAT="$SRC"; fi
run "$VENV/bin/pip" install --quiet --upgrade "$WHAT"
run install -d -m 0755 "$PREFIX/share/systemd"
run install -m 0644 "$SRC/systemd/README.md" "$PREFIX/share/systemd/README.md"

note "configuration in $ETC"
run install -d -o root -g "$USER_NAME" -m 0750 "$ETC"
install_config "$SRC/configs/station.example.toml" "$ETC/station.toml" \
    "s#^path = \"[^\"]*station\.sqlite\"#path = \"$STATE/station.sqlite\"#" \
    "path = \"$STATE/station.sqlite\""
if [ "$CENTRAL" = 1 ]; then
    install_config "$SRC/configs/central.example.toml" "$ETC/central.toml" \
        "s#^path = \"[^\"]*central\.sqlite\"#path = \"/var/lib/ghgnet-central/central.sqlite\"#" \
        "path = \"/var/lib/ghgnet-central/central.sqlite\""
fi
if [ -n "$BENCH" ]; then
    run install -d -o root -g "$USER_NAME" -m 0750 "$ETC/bench"
    install_config "$SRC/configs/bench.example.toml" "$ETC/bench/$BENCH.toml" \
        "s#^pty_link = \"[^\"]*/([^/\"]+)\"#pty_link = \"/run/ghgnet-sim/$BENCH/\\1\"#" \
        "pty_link = \"/run/ghgnet-sim/$BENCH/"
fi

note "data directory $STATE"
run install -d -o "$USER_NAME" -g "$USER_NAME" -m 0750 "$STATE"

note "systemd units in $UNIT_DIR"
UNITS=(station-agent.service)
ENABLE=(station-agent.service)
if [ "$CENTRAL" = 1 ]; then UNITS+=(central-receiver.service central-web.service); ENABLE+=(central-receiver.service central-web.service); fi
if [ -n "$BENCH" ]; then UNITS+=(station-sim@.service); ENABLE+=("station-sim@$BENCH.service"); fi
for unit in "${UNITS[@]}"; do
    if [ "$PREFIX" = /opt/ghgnet ]; then
        run install -m 0644 "$SRC/systemd/$unit" "$UNIT_DIR/$unit"
    else
        tmp="$(mktemp)"
        sed "s#/opt/ghgnet/#$PREFIX/#g" "$SRC/systemd/$unit" > "$tmp"
        run install -m 0644 "$tmp" "$UNIT_DIR/$unit"
        rm -f "$tmp"
    fi
done
if [ -d /run/systemd/system ] || [ "$DRY_RUN" = 1 ]; then
    run systemctl daemon-reload
    if [ "$START" = 1 ]; then
        run systemctl enable --now "${ENABLE[@]}"
    else
        run systemctl enable "${ENABLE[@]}"
    fi
else
    note "systemd is not running here: units copied, not enabled"
fi

note "done. Next: edit $ETC/station.toml, then"
echo "   $VENV/bin/station-agent config check $ETC/station.toml"
echo "   systemctl start station-agent && journalctl -u station-agent -f"
