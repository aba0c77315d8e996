"""Settings machinery shared by the kiosk and the centre.

It lives in `sync/` because both sides need it and the centre pushes kiosk settings over sync;
neither `kiosk` nor `central` may import the other. Each side declares its own model once
(name, type, default, help) and this module reads it from a TOML file and the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError


class StrictSettings(BaseModel):
    """Base of every settings model: unknown keys refused, values validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


S = TypeVar("S", bound=StrictSettings)


def _existing_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


TimeZoneName = Annotated[str, AfterValidator(_existing_zone)]


@dataclass(frozen=True)
class SettingProblem:
    source: str  # a file path or "environment"
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.key}: {self.reason}"


class SettingsError(Exception):
    """Raised with every problem found, so an operator can fix them all in one go."""

    def __init__(self, problems: list[SettingProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def env_name(prefix: str, field: str) -> str:
    return f"{prefix}{field.upper()}"


def load_settings(
    model: type[S],
    toml_path: Path | None,
    env: Mapping[str, str] | None = None,
    env_prefix: str = "",
    overrides: Mapping[str, Any] | None = None,
    reserved_env: frozenset[str] = frozenset(),
) -> S:
    """Build `model` from defaults < TOML file < environment < explicit overrides.

    Environment values are strings; pydantic parses them into the declared type. Every problem is
    reported with where it came from, the key and the reason. `reserved_env` names variables with
    the prefix that are not settings (the instance folder, say), so they are not refused.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    problems: list[SettingProblem] = []

    if toml_path is not None and toml_path.exists():
        try:
            data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(
                [SettingProblem(str(toml_path), "(file)", f"not valid TOML: {exc}")]
            ) from exc
        for key, value in data.items():
            if key not in model.model_fields:
                problems.append(SettingProblem(str(toml_path), key, "unknown setting"))
                continue
            values[key] = value
            origin[key] = str(toml_path)

    for name in model.model_fields:
        var = env_name(env_prefix, name)
        if var in env:
            values[name] = env[var]
            origin[name] = f"environment {var}"
    known_env = {env_name(env_prefix, n) for n in model.model_fields}
    if env_prefix:
        for var in env:
            if var.startswith(env_prefix) and var not in known_env | reserved_env:
                problems.append(SettingProblem("environment", var, "unknown setting"))

    for key, value in (overrides or {}).items():
        values[key] = value
        origin[key] = "command line"

    if problems:
        raise SettingsError(problems)
    try:
        return model(**values)
    except ValidationError as exc:
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(model)"
            top = str(err["loc"][0]) if err["loc"] else ""
            problems.append(SettingProblem(origin.get(top, "defaults"), key, err["msg"]))
        raise SettingsError(problems) from exc


def describe(model: type[StrictSettings]) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) for each setting, for docs and `check-config`."""
    rows = []
    for name, field in model.model_fields.items():
        annotation = getattr(field.annotation, "__name__", None) or str(field.annotation)
        rows.append(
            (name, annotation.replace("typing.", ""), field.default, field.description or "")
        )
    return rows


def render_toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render_toml_value(v) for v in value) + "]"
    if value is None:
        return '""'
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def effective_toml(settings: StrictSettings) -> str:
    """The effective settings as TOML, each preceded by its help line."""
    lines = []
    fields = type(settings).model_fields
    for name, value in settings.model_dump(mode="json").items():
        lines.append(f"# {fields[name].description}")
        if value is None:
            lines.append(f"# {name} = (not set)")
        else:
            lines.append(f"{name} = {render_toml_value(value)}")
    return "\n".join(lines) + "\n"
