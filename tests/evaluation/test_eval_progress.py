"""Evaluation shows its progress (issue 26: 10k images predicted in 14 s of silence), a few lines in a log."""

from __future__ import annotations

import re

from eval_fixtures import run_copy  # noqa: F401  (fixture)
from imgclf.evaluation.run_eval import evaluate_run


def test_evaluation_progress_is_a_few_lines_with_the_counts(run_copy, image_folder, tmp_path, monkeypatch, capsys):
    import imgclf.progress as progress_mod

    monkeypatch.setattr(progress_mod, "SHOW_AFTER_SECONDS", 0.0)  # every step counts as long
    # streaming (budget below one image) in batches of 4: 15 batches of the 60 images, one update each
    metrics = evaluate_run(run_copy, data=image_folder, batch_size=4, cache_dir=str(tmp_path / "c"), budget_bytes=10)
    lines = capsys.readouterr().err.splitlines()
    evaluating = [line for line in lines if line.startswith("evaluating on ")]
    decoding = [line for line in lines if line.startswith("decoding 60 images")]
    assert lines == decoding + evaluating, lines  # nothing else, decoding first
    assert 2 <= len(evaluating) <= 4 and 1 <= len(decoding) <= 4, lines
    assert re.search(r": 60 images in \d+\.\d s$", evaluating[-1]) and metrics.count == 60
    evaluate_run(run_copy, data=image_folder, batch_size=4, cache_dir=str(tmp_path / "c"), progress=False)
    assert capsys.readouterr().err == ""
