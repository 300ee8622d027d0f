"""Config files as an input surface: the example station, bench and central configs (configs/),
mutated, through each command's `config check`. Whatever the file holds, the check exits 0 saying
`FILE: ok`, or exits 2 with only `FILE: field.path: message` lines; never a traceback. The fuzz
runs each CLI in-process (typer's runner: the same command, without a process start per example);
the contract cases run the installed commands as processes."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from central.cli import app as central_app
from simulators.cli import app as bench_app
from station_agent.cli import app as station_app

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KINDS = {  # kind: (example file, in-process app, installed command)
    "station": ("station.example.toml", station_app, "station-agent"),
    "bench": ("bench.example.toml", bench_app, "station-sim"),
    "central": ("central.example.toml", central_app, "central-receiver"),
}
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_value(v: Any) -> str:
    """A value as inline TOML (the examples hold no dates)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return ("-" if v < 0 else "") + "inf" if math.isinf(v) else "nan" if math.isnan(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_key(k: str) -> str:
    return k if BARE_KEY.fullmatch(k) else json.dumps(k, ensure_ascii=False)


def toml_document(doc: dict[str, Any]) -> str:
    return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in doc.items())


def example(kind: str) -> dict[str, Any]:
    return tomllib.loads((ROOT / "configs" / KINDS[kind][0]).read_text())


toml_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20)
                | st.sampled_from(["", "0", "-1", "nan", "socket://", "tcp://:0", "../../..", "\x00", "é" * 300]))
toml_values = st.recursive(toml_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


@st.composite
def mutated(draw, kind: str) -> bytes:
    """The example with a few values replaced, keys dropped or added, then maybe cut or spliced
    with bytes (None, which TOML has not, drops the key)."""
    doc = example(kind)
    for _ in range(draw(st.integers(1, 4))):
        node: Any = doc
        for _ in range(draw(st.integers(0, 3))):
            children = [c for c in (node.values() if isinstance(node, dict) else node) if isinstance(c, dict | list) and c]
            if not children:
                break
            node = draw(st.sampled_from(children))
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            if action == "drop":
                del node[key]
            else:
                node[key if action == "replace" else draw(st.text(min_size=1, max_size=8))] = draw(toml_values)
        elif isinstance(node, list) and node:
            i = draw(st.integers(0, len(node) - 1))
            if action == "drop":
                del node[i]
            else:
                node[i] = draw(toml_values)
    text = toml_document(_without_none(doc)).encode()
    if draw(st.integers(0, 3)) == 0:
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.binary(max_size=6) | st.sampled_from([b"[[", b"= [", b"\xff", b"\n[a]\n[a]\n"])) \
            + text[cut:]
    return text


def _without_none(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _without_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_without_none(x) for x in v if x is not None]
    return v


def check_in_process(kind: str, path: Path):
    return CliRunner().invoke(KINDS[kind][1], ["config", "check", str(path)])


def assert_clear_outcome(path: Path, code: int, stdout: str, stderr: str) -> None:
    assert "Traceback" not in stdout + stderr, stdout + stderr
    if code == 0:
        assert stdout.strip() == f"{path}: ok"
        return
    assert code == 2, (code, stdout, stderr)
    lines = stderr.splitlines()
    assert lines, "exit 2 without a message"
    for line in lines:
        assert line.startswith(f"{path}: ") and len(line.split(": ", 2)) == 3, line


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A copy of configs/, so relative paths in the examples resolve as they do in the repository."""
    tmp = tmp_path_factory.mktemp("cfg")
    shutil.copytree(ROOT / "configs", tmp / "configs")
    return tmp / "configs"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_examples_written_back_pass_the_check(folder, kind):
    """The fuzz's TOML writer keeps what the examples mean (else the fuzz would test the writer)."""
    path = folder / f"rewritten-{kind}.toml"
    path.write_text(toml_document(example(kind)))
    res = check_in_process(kind, path)
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_config_is_ok_or_exit_2_with_field_paths(folder, kind, data):
    path = folder / f"fuzz-{kind}.toml"
    path.write_bytes(data.draw(mutated(kind)))
    res = check_in_process(kind, path)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert_clear_outcome(path, res.exit_code, res.stdout, res.stderr)


CONTRACT = [
    # (kind, file content, a fragment of the message)
    ("station", b"\xff\xfe", "(toml):"),
    ("station", b"[station]\nid = 'x'\n[station]\n", "(toml):"),
    ("station", b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "(toml):"),
    ("station", b"a = " + b"{b = " * 3000 + b"1" + b"}" * 3000 + b"\n", "(toml):"),
    ("station", b"", "station: Field required"),
    ("central", b"[serve]\nport = 70000\n", "serve.port: Input should be less than or equal to 65535"),
    ("central", b"[bogus]\n", "bogus: unknown key"),
    ("bench", b"[control]\nport = 'x'\n", "control.port:"),
    ("bench", b"\x00", "(toml):"),
]


@pytest.mark.parametrize(("kind", "content", "message"), CONTRACT)
def test_the_installed_check_commands_answer_bad_files_with_exit_2(tmp_path, kind, content, message):
    path = tmp_path / f"{kind}.toml"
    path.write_bytes(content)
    res = subprocess.run([BIN / KINDS[kind][2], "config", "check", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert_clear_outcome(path, res.returncode, res.stdout, res.stderr)
    assert res.returncode == 2 and message in res.stderr, res.stderr


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_missing_file_or_a_folder_is_exit_2(tmp_path, kind):
    for path in (tmp_path / "none.toml", tmp_path):
        res = subprocess.run([BIN / KINDS[kind][2], "config", "check", str(path)], capture_output=True, text=True,
                             timeout=60)
        assert_clear_outcome(path, res.returncode, res.stdout, res.stderr)
        assert res.returncode == 2
