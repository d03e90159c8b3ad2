"""The example of the page beside an exported model (`imgclf.export_usage`), run as its reader would run it."""

from __future__ import annotations

import re
from pathlib import Path


def page_example(page: Path) -> str:
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    assert len(blocks) == 1, page.read_text()
    return blocks[0]


def run_page_example(page: Path, paths: list[str], monkeypatch) -> list:
    namespace: dict = {}
    with monkeypatch.context() as m:
        m.chdir(page.parent)  # the example opens the model by its file name, as from its own folder
        exec(compile(page_example(page), str(page), "exec"), namespace)
        return namespace["predict"](paths)
