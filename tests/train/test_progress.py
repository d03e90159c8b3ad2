"""What training prints when its output goes to a file: a header, then one short line per epoch, no tqdm frames."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import make_image_folder


def test_a_redirected_log_has_a_header_and_one_short_line_per_epoch(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=10)
    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache"), "COLUMNS": "80"}
    proc = subprocess.run([sys.executable, "-m", "imgclf.cli", "train", str(data), "--img-size", "16", "--epochs", "3",
                           "--model-args", "width=4", "--out", str(tmp_path / "run"), "--batch-size", "8"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "\r" not in err and "it/s" not in err, "tqdm frames in a redirected log"
    lines = err.splitlines()
    assert lines[0].startswith("data ") and "3 classes" in lines[0]
    assert lines[1].startswith("model ") and "parameters" in lines[1] and lines[2].startswith("device ")
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]  # 1-based, like history.csv
    assert all(len(line.encode()) <= 200 for line in epochs) and all("loss " in line for line in epochs)
    summary = proc.stdout.splitlines()
    assert any(line.startswith("test accuracy") and "worst class" in line for line in summary), proc.stdout
