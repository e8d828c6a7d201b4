"""The tap's file arguments: a binary or non-JSON file is one CRITICAL line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("flag", ["--config", "--state", "--catalog"])
@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"{not json"], ids=["binary", "not-json"])
def test_a_bad_file_is_one_line_and_exit_2(tmp_path: Path, flag: str, content: bytes) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"username": "u", "password": "p", "start_date": "2024-01-01"}')
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    args = ["--config", str(bad)] if flag == "--config" else ["--config", str(config), flag, str(bad)]
    result = subprocess.run([sys.executable, "-m", "listrak_sync.singer", *args], capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("CRITICAL") and "bad.json" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "Unexpected" not in result.stderr
