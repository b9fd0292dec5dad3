"""The README's Python example runs as printed."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_example() -> str:
    """The first ```python block of the README."""
    found = re.search(r"^```python\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    assert found, "README.md has no ```python block"
    return found.group(1)


@pytest.mark.slow
def test_readme_python_example_runs(capsys):
    exec(compile(readme_python_example(), str(README), "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    assert "mean PSNR" in printed and "test accuracy" in printed
