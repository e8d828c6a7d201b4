"""The manual (README.md and docs/) stays in step with the code and stands on its own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from listrak_sync.cli import cli
from listrak_sync.cli.docs import (
    GENERATED_PAGES,
    SETTINGS_BEGIN,
    SETTINGS_END,
    TABLES_BEGIN,
    TABLES_END,
    regenerate,
    settings_block,
    tables_markdown,
)
from listrak_sync.pipeline.run_settings import active_keys

REPO = Path(__file__).parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
DOCS = REPO / "docs"
TOPICS = ["configuration", "tables", "destinations", "incremental", "verify", "singer", "orchestrators", "accounts",
          "simulator", "performance", "troubleshooting", "development", "listrak-api"]


def page(name: str) -> str:
    return (DOCS / f"{name}.md").read_text(encoding="utf-8")


def generated(text: str, begin: str, end: str) -> str:
    return text[text.index(begin):text.index(end) + len(end)]


def test_table_reference_is_generated_from_the_stream_table() -> None:
    assert generated(page("tables"), TABLES_BEGIN, TABLES_END) == tables_markdown(), \
        "run: python -m listrak_sync.cli.docs"


def test_settings_reference_is_generated_from_the_settings_table() -> None:
    configuration = page("configuration")
    assert generated(configuration, SETTINGS_BEGIN, SETTINGS_END) == settings_block(), \
        "run: python -m listrak_sync.cli.docs"
    for key in active_keys():
        assert f"| `{key.name}` |" in configuration and key.env in configuration


@pytest.mark.parametrize("name", GENERATED_PAGES)
def test_regenerating_a_page_changes_nothing(name: str) -> None:
    text = (REPO / name).read_text(encoding="utf-8")
    assert regenerate(text) == text, "run: python -m listrak_sync.cli.docs"


def test_the_generator_rewrites_the_docs_pages_in_place(tmp_path: Path) -> None:
    for name in GENERATED_PAGES:
        stale = (REPO / name).read_text(encoding="utf-8").replace("| `", "| `stale", 3)
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(stale, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "listrak_sync.cli.docs"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    for name in GENERATED_PAGES:
        assert (tmp_path / name).read_text(encoding="utf-8") == (REPO / name).read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="no generated block"):
        regenerate(README)


def test_the_readme_is_short_and_its_generated_blocks_are_gone() -> None:
    assert len(README.splitlines()) <= 250
    assert TABLES_BEGIN not in README and SETTINGS_BEGIN not in README


def test_quick_start_comes_first_then_commands_exit_codes_and_links() -> None:
    headings = re.findall(r"^## (.+)$", README, flags=re.M)
    assert headings[:4] == ["Quick start", "Commands", "Exit codes", "Documentation"], headings
    quick = README.index("## Quick start")
    assert quick < README.index("make demo") < README.index("## Commands")
    assert quick < README.index("make test") < README.index("## Commands")


def test_every_command_is_documented_with_help_and_an_example() -> None:
    for name, command in cli.commands.items():
        assert f"`listrak-sync {name}" in README, f"README's command table lacks `listrak-sync {name}`"
        assert "Example" in (command.help or ""), f"`listrak-sync {name} --help` shows no example"


def test_every_setting_has_a_key_in_the_settings_table() -> None:
    import dataclasses

    from listrak_sync.settings import Settings

    keyed = {key.field or key.name for key in active_keys()}
    assert {f.name for f in dataclasses.fields(Settings)} <= keyed


def test_every_page_exists_and_is_listed_in_the_readme_and_the_index() -> None:
    index = page("index")
    on_disk = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert set(TOPICS) <= on_disk
    for name in on_disk:
        assert f"(docs/{name}.md)" in README, f"README does not link docs/{name}.md"
        assert f"({name}.md)" in index, f"docs/index.md does not list {name}.md"


def test_every_relative_link_and_anchor_resolves() -> None:
    def anchors(text: str) -> set[str]:
        # GitHub's slugs: lowercase, punctuation dropped, spaces to hyphens.
        return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
                for title in re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M),
                                        flags=re.M)}

    for path in [REPO / "README.md", *DOCS.glob("*.md")]:
        text = path.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"\w+://", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            assert linked.exists(), f"{path.name}: broken link {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in anchors(linked.read_text(encoding="utf-8")), f"{path.name}: no anchor {target}"


def test_the_api_reference_has_every_section_the_code_cites() -> None:
    reference = page("listrak-api")
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", reference, flags=re.M))
    sections |= set(re.findall(r"^- \*\*(12\.\d+) ", reference, flags=re.M))
    cited: set[str] = set()
    for path in [*REPO.joinpath("src").rglob("*.py"), *REPO.joinpath("tests").glob("*.py"),
                 *REPO.joinpath("benchmarks").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "REFERENCE" not in text or path.name == "test_docs.py", f"{path}: cite docs/listrak-api.md"
        for citation in re.findall(r"docs/listrak-api\.md((?:,? ?§[\d.]+(?:-§[\d.]+)?)+)", text):
            cited |= set(re.findall(r"§(\d+(?:\.\d+)?)", citation))
    assert cited, "the code cites docs/listrak-api.md"
    assert cited <= sections, f"cited sections missing from docs/listrak-api.md: {sorted(cited - sections)}"
    for number in range(1, 19):
        assert f"12.{number}" in sections
    for tag in ("[W]", "[D]", "[O]", "[C]", "[I]"):
        assert tag in reference


def test_the_manual_cites_nothing_outside_the_repository() -> None:
    for path in [REPO / "README.md", *DOCS.glob("*.md")]:
        text = path.read_text(encoding="utf-8")
        assert "REFERENCE.md" not in text and "shared/" not in text, path.name
        assert "listrak_sync.dagster" not in text and "listrak_sync.docs" not in text, path.name


def test_the_license_pyproject_declares_is_in_the_repository_and_the_package() -> None:
    import importlib.metadata

    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    metadata = importlib.metadata.metadata("listrak-sync")
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
