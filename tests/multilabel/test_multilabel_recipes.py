"""Recipes on multi-label data: a recipe's single-label settings give way to the index file, the user's do not,
and the self-sizing recipe reads its input size from the index's images."""

from __future__ import annotations

import pytest
from ml_fixtures import make_mosaics

from imgclf.errors import ImgclfError
from imgclf.pipeline.resolve import resolve_config
from imgclf.data.native_size import native_img_size


def test_a_recipe_label_smoothing_gives_way_on_an_index_file(tmp_path):
    index, _ = make_mosaics(tmp_path, count=4)
    cfg = resolve_config(recipe="fast", data=str(index))
    assert cfg.label_smoothing == 0.0 and cfg.recipe == "fast"
    # the same recipe on class folders keeps it
    assert resolve_config(recipe="fast", data=str(tmp_path / "images")).label_smoothing == 0.1


def test_label_smoothing_the_user_gives_is_still_refused_on_multilabel_data(tmp_path):
    index, _ = make_mosaics(tmp_path, count=30)
    import imgclf

    assert resolve_config(recipe="fast", data=str(index), label_smoothing=0.1).label_smoothing == 0.1
    own = tmp_path / "mine.yaml"
    own.write_text("label_smoothing: 0.1\n")  # a config file is the user's too: kept, then refused by the run
    assert resolve_config(recipe="fast", config_file=own, data=str(index)).label_smoothing == 0.1
    with pytest.raises(ImgclfError, match=r"label_smoothing must be 0 for multi-label data.*label_smoothing=0.1"):
        imgclf.fit(data=str(index), recipe="fast", label_smoothing=0.1, sizing="fixed", time_limit=None, epochs=1,
                   img_size=32, out=str(tmp_path / "run"), progress=False)


@pytest.mark.parametrize("size", [24, 40])
def test_the_input_size_comes_from_the_index_files_images(tmp_path, size):
    index, _ = make_mosaics(tmp_path, count=6, size=size)
    assert native_img_size(str(index), 8) == size


@pytest.mark.parametrize("setting, value", [("unknown_detector", "energy"), ("unknown_acceptance", 0.9)])
def test_unknown_settings_are_refused_on_multilabel_data(tmp_path, setting, value):
    """They were accepted and recorded in config.yaml, and did nothing: a multi-label run has no unknown verdict."""
    import imgclf

    index, _ = make_mosaics(tmp_path, count=30)
    with pytest.raises(ImgclfError, match=rf"{setting} must be left at its default .* for multi-label data"):
        imgclf.fit(data=str(index), epochs=1, img_size=32, out=str(tmp_path / "run"), progress=False,
                   **{setting: value})
    assert not (tmp_path / "run").exists()


def test_a_search_on_an_index_file_leaves_label_smoothing_out_and_tests_label_wise(tmp_path):
    """The default space drew label smoothing, which multi-label runs refuse: every trial failed and the search
    stopped after 10. The chosen trial's test accuracy was subset accuracy beside a label-wise validation value."""
    import json

    import imgclf
    from imgclf.config import make_config
    from imgclf.records import RunDir
    from imgclf.search.space import default_space

    index, _ = make_mosaics(tmp_path, count=60)
    names = [p.name for p in default_space(make_config(data=str(index), model="simple_cnn"))]
    assert "label_smoothing" not in names and "lr" in names
    assert "label_smoothing" in [p.name for p in default_space(make_config(data=str(tmp_path / "images"),
                                                                           model="simple_cnn"))]
    result = imgclf.tune(data=str(index), model="simple_cnn", img_size=16, epochs=1, batch_size=16, trials=1,
                         model_args={"width": 4}, out=str(tmp_path / "tune"), progress=False)
    metrics = RunDir(result.best_run).read_metrics()
    best = json.loads((tmp_path / "tune" / "tune.json").read_text())["best"]
    assert best["test_accuracy"] == 1 - metrics.multilabel.hamming_loss != metrics.accuracy
