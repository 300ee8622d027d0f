"""`pip install ghgnet` is a station; `ghgnet[central]` adds the central stack (DESIGN.md section 2).

Two checks, each in a fresh interpreter: with everything installed (the dev venv), loading every
station module, and every module those modules import inside functions, never loads the central
stack; and with only the station's own dependencies on the path (what `pip install ghgnet`
installs: pyproject.toml's dependencies and theirs), every station module still imports.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
STATION_PACKAGES = ("ghgnet", "drivers", "simulators", "station_agent")
CENTRAL_STACK = ("scipy", "xarray", "netCDF4", "matplotlib", "psycopg", "pandas")


def _station_modules() -> list[str]:
    found = []
    for package in STATION_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.append(".".join(parts))
    return found


def _imported_anywhere(modules: list[str]) -> set[str]:
    """Every absolute module an import statement of these modules names, inside functions too
    (the CLI imports some of its commands' modules when the command runs)."""
    names: set[str] = set()
    for module in modules:
        path = ROOT / Path(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return names


def _import_all(modules: list[str], env: dict[str, str] | None = None, flags: tuple[str, ...] = ()) -> dict:
    """Import `modules` in a fresh interpreter; the failures and the central-stack modules loaded."""
    script = textwrap.dedent(f"""
        import importlib, json, sys
        failed = {{}}
        for name in {modules!r}:
            try:
                importlib.import_module(name)
            except Exception as exc:
                failed[name] = f"{{type(exc).__name__}}: {{exc}}"
        loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({CENTRAL_STACK!r}))
        print(json.dumps({{"failed": failed, "loaded": loaded}}))
    """)
    out = subprocess.run([sys.executable, *flags, "-c", script], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _station_distributions() -> set[str]:
    """The distributions `pip install ghgnet` brings (no extras): pyproject.toml's dependencies,
    then theirs from the installed metadata."""
    seen: set[str] = set()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = metadata.distribution(req.name).metadata["Name"]
        if name in seen:
            continue
        seen.add(name)
        todo += [Requirement(r) for r in metadata.requires(name) or []]
    return seen


def _station_site(into: Path) -> None:
    """A site folder holding links to the station's distributions alone (code and metadata)."""
    for name in _station_distributions():
        dist = metadata.distribution(name)
        for top in {f.parts[0] for f in dist.files or [] if f.parts and f.parts[0] not in ("..", "__pycache__")}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (into / top).exists():
                (into / top).symlink_to(source)


def test_station_modules_never_load_the_central_stack():
    modules = _station_modules()
    others = sorted(n for n in _imported_anywhere(modules)
                    if n.split(".")[0] not in STATION_PACKAGES + ("central",) + CENTRAL_STACK)
    got = _import_all(modules + others)
    assert got["failed"] == {}
    assert got["loaded"] == [], f"a station module loads the central stack: {got['loaded']}"


def test_station_modules_import_with_the_station_dependencies_alone(tmp_path):
    _station_site(tmp_path)
    for package in CENTRAL_STACK:
        assert not (tmp_path / package).exists(), f"{package} is a dependency of the station install"
    # -S: no site-packages, only the standard library, the links and the source tree
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    got = _import_all(_station_modules(), env=env, flags=("-S",))
    assert got["failed"] == {}, f"station modules need more than `pip install ghgnet`: {got['failed']}"
    assert got["loaded"] == []
