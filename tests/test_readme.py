"""The README's examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_opens_with_the_two_commands_for_a_fresh_machine() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert first_block is not None
    commands = [line for line in first_block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    assert "bin/" in commands[0]
    assert "pytest" in commands[1]


def test_the_readme_examples_run_and_their_test_passes() -> None:
    namespace: dict[str, object] = {}
    for block in _python_blocks():
        exec(compile(block, str(README), "exec"), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert tests, "the README shows a TestStore test"
    for test in tests:
        assert callable(test)
        test()
