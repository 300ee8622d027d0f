"""Loading TOML configuration into pydantic models, with errors a person can act on.

Shared by the station, the simulator bench and central: unknown keys are errors, every error names
the file and the field path (`FILE: field.path: message`), and relative paths resolve against the
config file's own folder (fields typed `RelPath`).
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _resolve_relative(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return value


RelPath = Annotated[Path, AfterValidator(_resolve_relative)]
"""A path that, when relative, is relative to the folder of the config file it was read from."""


class ConfigError(Exception):
    """A config file that cannot be used; `lines` are `FILE: field.path: message`, one per error."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


def _one_line(text: str) -> str:
    """Text as it may stand in one error line: control and separator characters escaped."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _loc_path(loc: tuple[Any, ...], drop: frozenset[str]) -> str:
    parts = [_one_line(str(p)) for p in loc if not (isinstance(p, str) and p in drop)]
    return ".".join(parts) or "(top level)"


def format_validation_error(
    source: str, error: ValidationError, drop_tags: frozenset[str] = frozenset()
) -> list[str]:
    lines = []
    for err in error.errors(include_url=False):
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not allowed here)"
        lines.append(f"{source}: {_loc_path(err['loc'], drop_tags)}: {_one_line(msg)}")
    return lines


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([f"{path}: (file): no such file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: (toml): {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: (toml): not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"]) \
            from None
    except RecursionError:  # tomllib recurses once per level of nested arrays and inline tables
        raise ConfigError([f"{path}: (toml): arrays or inline tables nested too deeply"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: (file): {exc.strerror or exc}"]) from None


def long_texts(data: Any, limit: int, where: str = "") -> list[str]:
    """`field.path: ...` for every string (value or key) in `data` longer than `limit` characters."""
    out = []
    if isinstance(data, str):
        if len(data) > limit:
            out.append(f"{where or '(top level)'}: text longer than {limit} characters ({len(data)})")
    elif isinstance(data, dict):
        for key, value in data.items():
            path = f"{where}.{key}" if where else str(key)
            if len(str(key)) > limit:
                out.append(f"{where or '(top level)'}: a key longer than {limit} characters ({len(str(key))})")
                continue
            out += long_texts(value, limit, path)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += long_texts(value, limit, f"{where}.{i}" if where else str(i))
    return out


def load_model(
    model: type[M], path: str | Path, drop_tags: frozenset[str] = frozenset()
) -> M:
    """Read `path` as TOML and validate it as `model`; raise ConfigError with every problem."""
    path = Path(path)
    data = read_toml(path)
    return validate_model(model, data, str(path), path.resolve().parent, drop_tags)


def validate_model(
    model: type[M],
    data: dict[str, Any],
    source: str,
    base_dir: Path | None,
    drop_tags: frozenset[str] = frozenset(),
) -> M:
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, drop_tags)) from None


def write_schema(schema: dict[str, Any], out: Path | None) -> None:
    """A config model's JSON schema, to `out` or standard output (each CLI's `config schema`)."""
    text = json.dumps(schema, indent=2) + "\n"
    if out:
        out.write_text(text)
    else:
        sys.stdout.write(text)
