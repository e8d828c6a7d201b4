"""The README is the user's manual: keep it in step with the code."""

from __future__ import annotations

from pathlib import Path

from listrak_sync.cli import cli
from listrak_sync.cli.docs import TABLES_BEGIN, TABLES_END, regenerate, tables_markdown
from listrak_sync.pipeline.run_settings import active_keys

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_table_reference_is_generated_from_the_stream_table() -> None:
    start, end = README.index(TABLES_BEGIN), README.index(TABLES_END) + len(TABLES_END)
    assert README[start:end] == tables_markdown(), "run: python -m listrak_sync.cli.docs"


def test_settings_reference_is_generated_from_the_settings_table() -> None:
    assert regenerate(README) == README, "run: python -m listrak_sync.cli.docs"
    for key in active_keys():
        assert f"| `{key.name}` |" in README and key.env in README


def test_every_command_is_documented_with_help_and_an_example() -> None:
    for name, command in cli.commands.items():
        assert f"listrak-sync {name}" in README, f"README does not document `listrak-sync {name}`"
        assert "Example" in (command.help or ""), f"`listrak-sync {name} --help` shows no example"


def test_quick_start_comes_first() -> None:
    quick = README.index("## Quick start")
    assert README.index("make demo") > quick and README.index("make test") > quick
    assert quick < README.index("## Configuration")


def test_every_setting_has_a_key_in_the_settings_table() -> None:
    import dataclasses

    from listrak_sync.settings import Settings

    keyed = {key.field or key.name for key in active_keys()}
    assert {f.name for f in dataclasses.fields(Settings)} <= keyed
