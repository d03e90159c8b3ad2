"""README's Python block runs as a script, as its `__main__` guard says, on the data its first command fetches: it
named data/flowers, photo.jpg and pil_image, which a reader has not got, and compared one run with itself."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python_block() -> str:
    text = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"```python\n(import numpy as np\n.*?)```", text, re.S)
    return block


def test_the_readme_python_block_runs_as_a_script_on_the_fetched_digits(digits_dir, tmp_path):
    block = _python_block()
    assert "epochs=10" in block
    shutil.copytree(digits_dir, tmp_path / "data" / "digits")
    script = tmp_path / "block.py"
    script.write_text(block.replace("epochs=10", "epochs=1"))  # its results are not the point: that it runs
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "why.png").is_file() and (tmp_path / "compare.html").is_file()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["model_s-1", "model_s-2"]
    assert (tmp_path / "runs" / "model_s-1" / "export" / "model.onnx").is_file()
