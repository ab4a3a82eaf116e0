"""The ``python`` blocks of docs/python-api.md run, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "python-api.md"


@pytest.mark.slow
def test_python_api_examples_run(home: Path, capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 6
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"docs/python-api.md block {i + 1}", "exec"), namespace)  # noqa: S102
    namespace["store"].close()
    out = capsys.readouterr().out
    assert "target leakage" in out and "better" in out


def test_import_core_is_cheap() -> None:
    import subprocess
    import sys

    code = "import sys, core; core.Dataset; print(sorted(m for m in ('mlflow', 'chromadb', 'openai', 'sklearn') if m in sys.modules))"
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=DOC.parent.parent,
    )
    assert res.stdout.strip() == "[]", res.stderr
