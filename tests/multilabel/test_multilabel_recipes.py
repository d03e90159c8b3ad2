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


def test_a_multilabel_search_ranks_and_prunes_its_trials_by_validation_map(tmp_path):
    """Label-wise accuracy at 0.5 rewards predicting no rare label: a multi-label search ranks its trials by the
    kept weights' validation mAP (the card's metrics.val_map, threshold-free), its pruner reads each epoch's
    val_map from training's log, and tune.json, tune.html and the trial's line say which measure it was."""
    import json

    from pathlib import Path

    import numpy as np
    import optuna

    import imgclf
    from imgclf.multilabel import macro_average_precision
    from imgclf.records import RunDir

    index, _ = make_mosaics(tmp_path, count=60)
    lines: list[str] = []
    result = imgclf.tune(data=str(index), model="simple_cnn", img_size=16, epochs=2, batch_size=16, trials=2,
                         model_args={"width": 4}, out=str(tmp_path / "tune"), progress=False, log=lines.append)
    record = json.loads((tmp_path / "tune" / "tune.json").read_text())
    assert record["objective"] == "val_map"
    untested = False
    for trial in record["trials"]:
        run = RunDir(tmp_path / "tune" / trial["run"])
        card, history = run.read_card(), run.read_history()
        assert trial["value"] == card.metrics.val_map != card.metrics.val_accuracy
        # a trial not tested (the best one is): its history's label-wise val_acc is no subset accuracy, which the
        # card's `accuracy` is on a tested one
        if card.metrics.split == "val":
            assert card.metrics.accuracy is None and card.metrics.val_accuracy is not None
            untested = True
        assert all(row.val_map is not None for row in history)
    assert untested
    # what the pruner read at each epoch (Optuna's intermediate values): training's val_map, not its val_acc
    study = optuna.load_study(study_name="imgclf", storage=f"sqlite:///{tmp_path / 'tune' / 'study.db'}")
    for trial in study.trials:
        history = RunDir(tmp_path / "tune" / trial.user_attrs["run"]).read_history()
        reported = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
        assert reported == pytest.approx([row.val_map for row in history], abs=1e-5)
        if card.training.val_map_after_batch_norm is None:
            assert card.metrics.val_map == history[-1].val_map
    # the trial's value is the mAP of the kept weights on the validation images, as the report computes a split's
    best = RunDir(result.best_run)
    card = best.read_card()
    assert card.training.val_map_after_batch_norm is not None  # simple_cnn has BatchNorm: recomputed
    clf = imgclf.load(result.best_run, precision="32")
    val = best.read_dataset().splits["val"]
    files = [str(Path(best.read_dataset().root) / f) for f in val.files]
    probs = np.array([[dict(pred.top)[c] for c in clf.classes]
                      for pred in clf.predict(files, top_k=len(clf.classes))])
    targets = np.array([[int(i in ids) for i in range(len(clf.classes))] for ids in val.label_sets])
    assert card.metrics.val_map == pytest.approx(macro_average_precision(targets, probs), abs=1e-6)
    assert any(f"val mAP {trial['value']:.4f}" in line for line in lines for trial in record["trials"])
    assert record["best"]["test_map"] == best.read_metrics().multilabel.map_macro
    page = (tmp_path / "tune" / "tune.html").read_text()
    assert "on the validation mAP of each epoch" in page and "<th>val mAP</th>" in page


def test_a_multilabel_search_started_before_map_ranking_is_not_resumed_with_it(tmp_path):
    """A search whose first trials were ranked by label-wise accuracy, resumed after the change, put accuracies and
    mAPs in one study and picked its best across them: such a resume is refused, saying why."""
    import imgclf
    import yaml
    from imgclf.errors import ImgclfError

    index, _ = make_mosaics(tmp_path, count=40)
    out = tmp_path / "tune"
    settings = dict(data=str(index), model="simple_cnn", img_size=16, epochs=1, batch_size=16,
                    model_args={"width": 4}, progress=False)
    imgclf.tune(trials=1, out=str(out), **settings)
    stored = yaml.safe_load((out / "search.yaml").read_text())
    assert stored["objective"] == "val_map"
    del stored["objective"]  # as an earlier release wrote it
    (out / "search.yaml").write_text(yaml.safe_dump(stored))
    with pytest.raises(ImgclfError, match=r"resume .*ranked its trials by val_accuracy \(started by an earlier "
                                          r"release\)"):
        imgclf.tune(trials=2, out=str(out), resume=True)


def test_a_multilabel_search_whose_validation_images_carry_no_label_stops_at_once_saying_why(tmp_path, recwarn):
    """No validation positive, no mAP: every trial trained in full and failed "no validation mAP (a validation
    split is needed)", ten in a row, beside Optuna's warning of a misspelt metric."""
    import imgclf
    from imgclf.errors import ImgclfError

    index, sets = make_mosaics(tmp_path, count=40)
    rows = index.read_text().splitlines()[1:]
    # the images without any shape are the val rows: their label cells are empty
    tagged = [f"{r},{'val' if not s else 'train'}" for r, s in zip(rows, sets)]
    tagged += [f"images/blank{i}.png,,val" for i in range(3)]
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (32, 32), (20 + i, 20, 20)).save(tmp_path / "images" / f"blank{i}.png")
    index.write_text("path,labels,split\n" + "\n".join(tagged) + "\n")
    with pytest.raises(ImgclfError, match=r"no validation image carries any of the labels"):
        imgclf.tune(data=str(index), model="simple_cnn", img_size=16, epochs=1, batch_size=16, trials=3,
                    model_args={"width": 4}, out=str(tmp_path / "tune"), progress=False)
    assert len(list((tmp_path / "tune" / "trials").iterdir())) == 1  # one trial, not ten
    assert not [w for w in recwarn if "is not in the evaluation logs" in str(w.message)]
