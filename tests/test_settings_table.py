"""The settings table is the one description of every key: each surface shows exactly its keys.

Also the resolution of a run's keys through dlt's configuration, in a fresh process for each
case (dlt reads ``.dlt/*.toml`` once per process): the four places and their priority, the
user's ``~/.dlt``, and unknown keys in either file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import clean_env

from listrak_sync.cli import cli
from listrak_sync.cli.docs import settings_block
from listrak_sync.settings import Secret, Settings
from listrak_sync.settings_table import SETTINGS, Setting, SettingType, Surface
from listrak_sync.singer.about import about, about_markdown

ANNOTATIONS = {
    SettingType.TEXT: "str",
    SettingType.DATE: "datetime",
    SettingType.INTEGER: "int",
    SettingType.NUMBER: "float",
    SettingType.BOOLEAN: "bool",
    SettingType.LIST_IDS: "tuple[int, ...] | None",
    SettingType.TABLE_NAMES: "tuple[str, ...] | None",
}


def ids(setting: Setting) -> str:
    return setting.name


def test_settings_fields_are_the_library_keys_with_their_types_and_defaults() -> None:
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    library = {s.field_name: s for s in SETTINGS if Surface.LIBRARY in s.surfaces}
    assert set(fields) == set(library)
    for name, setting in library.items():
        field = fields[name]
        assert str(field.type) == (Secret.__name__ if setting.secret else ANNOTATIONS[setting.type]), name
        if setting.required:
            assert field.default is dataclasses.MISSING, name
        elif setting.secret:  # an unset secret is the empty Secret, never None
            assert field.default == Secret(setting.default or ""), name
        else:
            assert field.default == setting.default, name
            assert setting.shown_default is not None or setting.default is not None, name


def test_names_are_unique_and_every_key_has_a_surface_and_a_description() -> None:
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)
    assert len({s.field_name for s in SETTINGS}) == len(SETTINGS)
    for setting in SETTINGS:
        assert setting.surfaces and setting.description.endswith("."), setting.name
        assert Surface.CHECK not in setting.surfaces or Surface.RUN in setting.surfaces, setting.name


def options(command: str) -> dict[str, list[str]]:
    """The command's options: parameter name to its flags."""
    return {p.name: p.opts for p in cli.commands[command].params if p.name}


@pytest.mark.parametrize("setting", SETTINGS, ids=ids)
def test_every_key_is_on_exactly_its_surfaces(setting: Setting) -> None:
    # the library
    assert (setting.field_name in {f.name for f in dataclasses.fields(Settings)}) == (
        Surface.LIBRARY in setting.surfaces)
    # the CLI: its flag on run and check where it has them, never a flag it does not have
    for command, surface in (("run", Surface.RUN), ("check", Surface.CHECK)):
        offered = options(command)
        if setting.flag and surface in setting.surfaces:
            assert offered.get(setting.name) == [setting.flag], (command, setting.name)
        else:
            assert setting.name not in offered, (command, setting.name)
    # the tap's --about, in both forms
    properties = about()["settings"]["properties"]
    assert (setting.field_name in properties) == (Surface.TAP in setting.surfaces)
    if Surface.TAP in setting.surfaces:
        schema = properties[setting.field_name]
        assert schema["description"] == setting.description
        assert schema.get("default") == setting.default
        assert schema.get("secret", False) == setting.secret
        assert f"| `{setting.field_name}` |" in about_markdown()
    # the generated docs: every run key, its variable and its flag
    block = settings_block()
    row = f"| `{setting.name}` | {f'`{setting.flag}`' if setting.flag else ''} | `{setting.env}` |"
    assert (row in block) == (Surface.RUN in setting.surfaces), setting.name


def test_the_password_and_client_secret_have_no_flag_anywhere_and_are_the_only_secrets() -> None:
    assert [s.name for s in SETTINGS if s.secret] == ["password", "client_secret"]
    assert all(s.flag is None for s in SETTINGS if s.secret)
    assert about()["settings"]["properties"]["password"]["writeOnly"] is True
    assert about()["settings"]["properties"]["client_secret"]["writeOnly"] is True


# ---- resolution through dlt's configuration, each case in a fresh process

GATHER = """
import json, sys
from listrak_sync.errors import ConfigError
from listrak_sync.pipeline.run_settings import gather
try:
    values, target = gather(json.loads(sys.argv[1]), sys.argv[2] or None)
except ConfigError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    print(json.dumps({"values": values, "dataset": target.dataset}))
"""


def gather_in(project: Path, home: Path, env: dict[str, str], flags: dict[str, str] | None = None,
              account: str = "") -> dict[str, object]:
    result = subprocess.run([sys.executable, "-c", GATHER, json.dumps(flags or {}), account], cwd=project,
                            env=clean_env() | {"HOME": str(home), **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


# dlt's global folder is ~/.dlt, but /var/dlt for root, which a test must not write.
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_each_place_wins_over_the_next(tmp_path: Path) -> None:
    project, home = tmp_path / "project", tmp_path / "home"
    # Lowest first. dlt merges each file of ~/.dlt under the project's, secrets.toml over config.toml.
    places = ["home_config", "config", "home_secrets", "secrets", "sources_env", "listrak_env", "flag"]
    files = {"home_config": home / ".dlt/config.toml", "config": project / ".dlt/config.toml",
             "home_secrets": home / ".dlt/secrets.toml", "secrets": project / ".dlt/secrets.toml"}
    if AS_ROOT:
        places = [place for place in places if not place.startswith("home_")]
    # One key per place, set there and in every lower place: the value of its own place must win.
    keys = dict(zip(places, ["interval_days", "max_retries", "concurrency", "connect_timeout", "read_timeout",
                             "backoff_max", "retry_budget_seconds"], strict=False))
    toml = dict.fromkeys((place for place in places if place in files), "[sources.listrak]\n")
    env: dict[str, str] = {}
    flags: dict[str, str] = {}
    for top, key in keys.items():
        for index, place in enumerate(places[:places.index(top) + 1]):
            value = str(10 + index)
            if place in files:
                toml[place] += f'{key} = "{value}"\n'
            elif place == "sources_env":
                env[f"SOURCES__LISTRAK__{key.upper()}"] = value
            elif place == "listrak_env":
                env[f"LISTRAK_{key.upper()}"] = value
            else:
                flags[key] = value
    for place, text in toml.items():
        write(files[place], text)
    found = gather_in(project, home, env, flags)
    assert found["values"] == {key: str(10 + places.index(top)) for top, key in keys.items()}, found


def test_unknown_keys_in_either_file_or_the_environment_name_the_valid_keys(tmp_path: Path) -> None:
    project, home = tmp_path / "project", tmp_path / "home"
    run_keys = [s.name for s in SETTINGS if Surface.RUN in s.surfaces]
    files = [project / ".dlt/config.toml", project / ".dlt/secrets.toml"]
    files += [] if AS_ROOT else [home / ".dlt/config.toml"]
    for where in files:
        write(where, '[sources.listrak]\nendpiont = "http://example.invalid"\n')
        error = str(gather_in(project, home, {})["error"])
        assert "'endpiont'" in error and where.name in error and all(k in error for k in run_keys), error
        where.unlink()
    error = str(gather_in(project, home, {"SOURCES__LISTRAK__CONCURENCY": "4"})["error"])
    assert "'concurency'" in error and "SOURCES__LISTRAK__CONCURENCY" in error
    write(project / ".dlt/secrets.toml", '[sources.listrak.accounts.shop]\nusername = "u"\ncolour = "blue"\n')
    error = str(gather_in(project, home, {}, account="shop")["error"])
    assert "'colour' for account 'shop'" in error


def test_named_accounts_come_from_the_files_with_their_own_dataset(tmp_path: Path) -> None:
    project, home = tmp_path / "project", tmp_path / "home"
    write(project / ".dlt/config.toml", '[sources.listrak]\nconcurrency = "3"\ndataset = "shared"\n'
                                        '[sources.listrak.accounts.shop_eu]\nconcurrency = "5"\n')
    write((project if AS_ROOT else home) / ".dlt/secrets.toml", '[sources.listrak.accounts.shop_us]\nusername = "us"\n')
    eu = gather_in(project, home, {}, account="shop_eu")
    assert eu == {"values": {"concurrency": "5"}, "dataset": "shop_eu"}
    us = gather_in(project, home, {}, account="shop_us")
    assert us == {"values": {"username": "us", "concurrency": "3"}, "dataset": "shop_us"}
    assert gather_in(project, home, {}, {"concurrency": "7"}, account="shop_eu")["values"] == {"concurrency": "7"}


def test_a_malformed_file_is_a_configuration_error(tmp_path: Path) -> None:
    project, home = tmp_path / "project", tmp_path / "home"
    write(project / ".dlt/config.toml", "[sources.listrak\nconcurrency = 3\n")
    assert "error" in gather_in(project, home, {})
