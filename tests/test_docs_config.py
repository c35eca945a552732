"""The configuration documentation, .env.example and the compose file agree with Settings.

Every field of :class:`savgan.common.settings.Settings` must be documented in the table of
docs/SERVICE.md as ``SAVGAN_<FIELD>`` with its real default, and must reach the containers
(compose's ``x-savgan-env`` anchor or .env.example) unless it only makes sense outside compose.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr, TypeAdapter

from savgan.common.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "SERVICE.md"
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE = ROOT / "docker-compose.yml"

# Settings that compose deliberately does not pass, and why.
NOT_IN_COMPOSE = {
    "local_storage_dir": "compose always uses S3 storage; the local folder is for embedded mode",
    "auth_disabled": "allowed only in embedded mode; compose always requires API keys",
}

# Settings whose compose default differs from the Settings default on purpose.
COMPOSE_OWN_DEFAULTS = {
    "s3_public_endpoint_url": "links are signed for the storage port published on the host",
    "public_base_url": "the API port published on the host",
}

FIELDS = sorted(Settings.model_fields)
ROW = re.compile(r"^\|\s*`(SAVGAN_[A-Z0-9_]+)`\s*\|([^|]*)\|([^|]*)\|")
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def env_name(field: str) -> str:
    return f"SAVGAN_{field.upper()}"


def docs_table() -> dict[str, tuple[str, str]]:
    """SAVGAN_* name -> (default cell, meaning cell) of the configuration table."""
    rows = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            name, default, meaning = (group.strip() for group in match.groups())
            assert name not in rows, f"{name} appears twice in the table of {DOCS.name}"
            rows[name] = (default.strip("`"), meaning)
    return rows


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


def commented_env_example() -> set[str]:
    """Names shown as commented-out defaults (``# SAVGAN_X=...``)."""
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    return set(re.findall(r"^#\s*(SAVGAN_[A-Z0-9_]+)=", text, flags=re.MULTILINE))


def compose_anchor() -> dict[str, str]:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    anchor = compose["x-savgan-env"]
    return {key: str(value) for key, value in anchor.items()}


def interpolate(value: str, variables: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        if variables.get(name):
            return variables[name]
        if op == "-":
            return arg
        raise AssertionError(f"{name} is required by docker-compose.yml but not set in .env.example")

    return INTERPOLATION.sub(one, value)


def plain_default(field: str) -> Any:
    default = Settings.model_fields[field].default
    if isinstance(default, SecretStr):
        return default.get_secret_value()
    return default


def parse_as_field(field: str, text: str) -> Any:
    value = TypeAdapter(Settings.model_fields[field].annotation).validate_python(text)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_setting_is_in_the_docs_table() -> None:
    rows = docs_table()
    missing = [env_name(f) for f in FIELDS if env_name(f) not in rows]
    assert not missing, f"docs/SERVICE.md's configuration table lacks {missing}"
    stale = sorted(set(rows) - {env_name(f) for f in FIELDS})
    assert not stale, f"docs/SERVICE.md documents variables Settings does not have: {stale}"
    assert all(meaning for _, meaning in rows.values()), "every row needs a meaning"


@pytest.mark.parametrize("field", FIELDS)
def test_docs_table_shows_the_real_default(field: str) -> None:
    cell = docs_table()[env_name(field)][0]
    default = plain_default(field)
    if default in (None, ""):
        assert cell in ("", "—", "-", "(empty)", "(none)"), f"{env_name(field)}: default is empty, docs say {cell!r}"
    else:
        assert parse_as_field(field, cell) == default, f"{env_name(field)}: default {default!r}, docs say {cell!r}"


def test_every_setting_reaches_the_containers() -> None:
    anchor = compose_anchor()
    example = set(env_example()) | commented_env_example()
    missing = [
        env_name(f) for f in FIELDS if f not in NOT_IN_COMPOSE and env_name(f) not in anchor and env_name(f) not in example
    ]
    assert not missing, f"neither the compose x-savgan-env anchor nor .env.example sets {missing}"
    for field in NOT_IN_COMPOSE:
        assert env_name(field) not in anchor, f"{env_name(field)} is listed as not for compose but the anchor sets it"


def test_compose_defaults_match_settings() -> None:
    for name, value in compose_anchor().items():
        field = name.removeprefix("SAVGAN_").lower()
        assert field in Settings.model_fields, f"compose sets {name}, which Settings does not read"
        match = INTERPOLATION.fullmatch(value)
        if match and match.group(2) == "-" and field not in COMPOSE_OWN_DEFAULTS:
            assert parse_as_field(field, match.group(3)) == plain_default(field), (
                f"docker-compose.yml defaults {name} to {match.group(3)!r}, Settings to {plain_default(field)!r}"
            )


def test_commented_defaults_in_env_example_match_settings() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name, value in re.findall(r"^#\s*(SAVGAN_[A-Z0-9_]+)=(\S*)", text, flags=re.MULTILINE):
        field = name.removeprefix("SAVGAN_").lower()
        assert field in Settings.model_fields, f".env.example mentions {name}, which Settings does not read"
        assert parse_as_field(field, value) == plain_default(field), f".env.example shows {name}={value}"


def test_compose_environment_from_env_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the containers get with .env.example's values passes Settings' own validation."""
    variables = env_example()
    environment = {name: interpolate(value, variables) for name, value in compose_anchor().items()}
    for name in list(os.environ):
        if name.startswith("SAVGAN_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.mode == "distributed" and settings.storage == "s3"
    assert settings.s3_endpoint_url and settings.s3_public_endpoint_url
    assert settings.s3_endpoint_url != settings.s3_public_endpoint_url, "links must be signed for the public endpoint"
    assert len(settings.owners_by_key()) >= 1
