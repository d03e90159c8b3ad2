"""The pipeline layer: one config resolution for every entry point, and the package layering it protects."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import imgclf
from conftest import make_image_folder
from imgclf.cli import app
from imgclf.errors import ImgclfError
from imgclf.pipeline import resolve_config
from imgclf.recipes import load_recipe
from imgclf.records import RunDir

SRC = Path(imgclf.__file__).parent


def _saved(run_dir: Path) -> dict:
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config.pop("out")
    return config


def test_cli_and_api_resolve_a_recipe_with_overrides_to_the_same_config(tmp_path):
    data = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=6, size=24)
    flags = ["--recipe", "s5-model-s", "--epochs", "1", "--lr", "0.01", "--batch-size", "4", "--val-split", "0.2",
             "--test-split", "0.2", "--no-progress", "--model-args", "dense_l2=0.001"]
    result = CliRunner().invoke(app, ["train", str(data), *flags, "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    # the lines before the first epoch name the recipe and what the run changed of it (they named none)
    from imgclf.pipeline.announce import _recipe_line
    from imgclf.records import RunDir as _Run

    assert _recipe_line(_Run(tmp_path / "cli").read_config()) == (
        "s5-model-s, changed: val_split 0.1 -> 0.2, test_split 0.1 -> 0.2, model_args {} -> {'dense_l2': 0.001}, "
        "epochs 40 -> 1, batch_size 64 -> 4, lr 0.001 -> 0.01")
    assert _recipe_line(resolve_config(recipe="s5-model-s", data="d")) == "s5-model-s, as shipped"
    imgclf.fit(data=str(data), recipe="s5-model-s", epochs=1, lr=0.01, batch_size=4, val_split=0.2, test_split=0.2,
               progress=False, model_args={"dense_l2": 0.001}, out=str(tmp_path / "api"))
    cli, api = _saved(tmp_path / "cli"), _saved(tmp_path / "api")
    assert cli == api
    recipe = load_recipe("s5-model-s")
    assert api["model"] == "model_s" and api["augment"] == recipe["augment"] and api["lr"] == 0.01
    # the card and the report say what the run changed of the recipe, which the report held against the reference's
    # figures as if the run were the recipe's
    from html import unescape

    from imgclf.records import RunDir

    changes = RunDir(tmp_path / "api").read_card().training.recipe_changes
    # the settings the recipe leaves at their defaults count too (the splits and model_args were left out, and a
    # run with --no-pretrained or --label-smoothing was called the recipe as shipped)
    assert changes == {"epochs": {"recipe": recipe["epochs"], "run": 1}, "lr": {"recipe": recipe["lr"], "run": 0.01},
                       "batch_size": {"recipe": recipe["batch_size"], "run": 4},
                       "val_split": {"recipe": 0.1, "run": 0.2}, "test_split": {"recipe": 0.1, "run": 0.2},
                       "model_args": {"recipe": {}, "run": {"dense_l2": 0.001}}}, changes
    page = " ".join(unescape((tmp_path / "api" / "report.html").read_text()).split())
    assert "This run trained 6 of the recipe's settings otherwise, so it is not the recipe as shipped" in page
    assert f"<td><code>epochs</code></td><td>{recipe['epochs']}</td><td>1</td>" in page


def test_a_saved_config_repeats_the_run_from_another_folder(tmp_path, tiny_run, monkeypatch):
    monkeypatch.chdir(tmp_path)  # config.yaml's paths are absolute: the repeat works from anywhere
    result = CliRunner().invoke(app, ["train", "--config", str(tiny_run / "config.yaml"), "--out", "again"])
    assert result.exit_code == 0, result.output
    assert _saved(tmp_path / "again") == _saved(tiny_run)
    result = CliRunner().invoke(app, ["train", "--config", str(tiny_run / "config.yaml")])
    assert result.exit_code == 2 and "holds another run" in result.stderr  # its own out: never overwritten
    # and the advice leads with a new run: --overwrite alone, followed, replaced the run being repeated
    assert "Pass --out NEW for a new run (its settings repeated from a config.yaml too)" in \
        " ".join(result.stderr.split())


def test_layers_apply_in_order_defaults_recipe_file_explicit(tmp_path):
    config_file = tmp_path / "settings.yaml"
    config_file.write_text(yaml.safe_dump({"recipe": "s5-model-s", "lr": 0.05, "epochs": 7, "seed": 3}))
    cfg = resolve_config(config_file=config_file, data=str(tmp_path), epochs=2)
    recipe = load_recipe("s5-model-s")
    assert cfg.model == recipe["model"]  # from the recipe the file names
    assert cfg.lr == 0.05 and cfg.seed == 3  # the file beats the recipe
    assert cfg.epochs == 2  # explicit values beat the file
    assert cfg.batch_size == recipe.get("batch_size", 64)
    assert cfg.recipe == "s5-model-s" and Path(cfg.data).is_absolute()
    # explicit None means "not given", so a CLI flag left out never hides the recipe's value
    assert resolve_config(recipe="s5-model-s", data=".", augment=None).augment == recipe["augment"]


def test_none_unsets_a_recipes_value(tmp_path):
    # None is "not given" (the recipe's value stays); the word none (or off) is given, and unsets the setting
    assert resolve_config(recipe="fast-fmnist", data=".", time_limit=None).time_limit == "10m"
    lifted = resolve_config(recipe="fast-fmnist", data=".", time_limit="none", schedule="onecycle", epochs=3)
    assert lifted.time_limit is None and lifted.time_limit_seconds is None
    assert resolve_config(recipe="fast-fmnist", data=".", time_limit="Off", schedule="cosine").time_limit is None
    assert load_recipe("s5-model-s")["early_stopping"] == 6
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"recipe": "s5-model-s", "l2": {"conv": 1e-4}}))
    assert resolve_config(config_file=settings, data=".").l2 == {"conv": 1e-4}
    s5 = resolve_config(config_file=settings, data=".", early_stopping="none", l2="none")  # a mapping unset too
    assert s5.early_stopping is None and s5.l2 is None
    assert resolve_config(recipe="s5-model-s", data=".", early_stopping=None).early_stopping == 6
    with pytest.raises(ImgclfError, match=r"^time_limit must be set when schedule=budget"):
        resolve_config(recipe="fast-fmnist", data=".", time_limit="none")  # the recipe's schedule needs one
    with pytest.raises(ImgclfError, match=r"^time_limit must be set when sizing=probe"):
        resolve_config(recipe="fast", data=".", time_limit="none", schedule="onecycle")  # README: --sizing fixed too
    assert resolve_config(recipe="fast", data=".", time_limit="none", schedule="onecycle",
                          sizing="fixed").time_limit is None
    with pytest.raises(ImgclfError, match=r"time_limit must be a duration such as 90s, 10m, 1.5h or 1h30m, or none "
                                          r"\(no budget\)\. Received: time_limit='never'"):
        resolve_config(recipe="fast-fmnist", data=".", time_limit="never")
    with pytest.raises(ImgclfError, match=r"^epochs must be a valid integer\. Received"):  # not unsettable
        resolve_config(recipe="fast-fmnist", data=".", epochs="none")
    data = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=6, size=28, mode="L")
    result = CliRunner().invoke(app, ["train", str(data), "--recipe", "fast-fmnist", "--time-limit", "none",
                                      "--schedule", "onecycle", "--epochs", "2", "--batch-size", "4", "--no-progress",
                                      "--early-stopping", "1", "--ema", "off", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    saved = _saved(tmp_path / "r")
    assert saved["time_limit"] is None and saved["ema"] is None and saved["early_stopping"] == 1
    assert len((tmp_path / "r" / "history.csv").read_text().splitlines()) == 1 + 2


def test_model_args_add_to_the_recipes_and_the_files_key_by_key(tmp_path):
    assert load_recipe("fast-fmnist")["model_args"] == {"width": 16}
    cfg = resolve_config(recipe="fast-fmnist", data=str(tmp_path), model_args="stem=stride")
    assert cfg.model_args == {"width": 16, "stem": "stride"}  # not the builder's default width
    assert resolve_config(recipe="fast-fmnist", data=".", model_args={"width": 24}).model_args == {"width": 24}
    config_file = tmp_path / "settings.yaml"
    config_file.write_text(yaml.safe_dump({"recipe": "fast-fmnist", "model_args": {"init": "dirac"}}))
    cfg = resolve_config(config_file=config_file, data=".", model_args="stem=stride")
    assert cfg.model_args == {"width": 16, "init": "dirac", "stem": "stride"}
    with pytest.raises(ImgclfError, match=r"model_args must be key=value pairs .* Received: model_args='w'"):
        resolve_config(recipe="fast-fmnist", data=".", model_args="w")
    # another model: the recipe's model_args were its model's
    assert resolve_config(recipe="fast-fmnist", data=".", model="simple_cnn").model_args == {}
    assert resolve_config(recipe="fast-fmnist", data=".", model="simple_cnn", model_args="width=8").model_args == {
        "width": 8}
    # a file that names no model: its model_args go with the model the flags name
    config_file.write_text(yaml.safe_dump({"model_args": {"width": 8}}))
    assert resolve_config(config_file=config_file, data=".", model="simple_cnn").model_args == {"width": 8}
    # a stored config.yaml is a whole run: its model_args replace the recipe's (a run from before a recipe changed
    # repeats as it trained)
    stored = resolve_config(recipe="fast-fmnist", data=".", model_args={"width": 24}).model_dump(mode="json")
    stored["model_args"] = {"stem": "stride"}
    config_file.write_text(yaml.safe_dump(stored))
    assert resolve_config(config_file=config_file).model_args == {"stem": "stride"}


def test_api_fit_applies_a_recipe_it_names(tmp_path):
    """imgclf.fit({"recipe": ...}) used to train the default simple_cnn: the recipe was resolved in the CLI only."""
    cfg = resolve_config({"recipe": "fast-fmnist", "data": str(tmp_path)}, time_limit="5m")
    assert cfg.model == "fast_resnet" and cfg.schedule == "budget" and cfg.time_limit == "5m"


@pytest.mark.parametrize("kwargs, message", [
    ({"recipe": "s5-modl-s"}, r"recipe must be one of .*Did you mean: s5-model-s"),
    ({"config_file": "nowhere.yaml"}, r"config_file must be an existing YAML file. Received: config_file='nowhere.yaml'"),
    ({"lr": "fast"}, r"lr must be a number > 0 .* or auto .* Received: lr='fast'"),
])
def test_bad_settings_name_the_setting(tmp_path, kwargs, message):
    with pytest.raises(ImgclfError, match=message):
        resolve_config(data=str(tmp_path), **kwargs)


def test_python_values_the_command_line_spells_as_text_are_taken(tmp_path):
    """A number of seconds and a list of transforms from Python were refused as 'must be a valid string'."""
    cfg = resolve_config(data=str(tmp_path), time_limit=30, augment=["hflip", "rotate=10"])
    assert (cfg.time_limit, cfg.time_limit_seconds, cfg.augment) == ("30s", 30.0, "hflip,rotate=10")
    assert resolve_config(data=str(tmp_path), time_limit=1.5, augment=[]).time_limit_seconds == 1.5
    assert resolve_config(data=str(tmp_path), time_limit=10**6).time_limit == "1000000s"  # not 1e+06s, refused
    with pytest.raises(ImgclfError, match=r"^time_limit must be a duration > 0 .*Received: time_limit=-5$"):
        resolve_config(data=str(tmp_path), time_limit=-5)
    with pytest.raises(ImgclfError, match=r"^time_limit must be a valid string"):
        resolve_config(data=str(tmp_path), time_limit=True)  # a switch is no duration
    # the list goes through the string form's checks: an item twice is refused alike
    with pytest.raises(ImgclfError, match=r"^augment .*hflip is given twice"):
        resolve_config(data=str(tmp_path), augment=["hflip", "hflip"])


@pytest.mark.parametrize("text, seconds, kept", [("1h30m", 5400, "1h30m"), ("1h 30m 15s", 5415, "1h30m15s"),
                                                 ("10M", 600, "10m"), ("90", 90, "90s"), (".5h", 1800, ".5h"),
                                                 (" 2.5 m", 150, "2.5m")])
def test_a_duration_may_join_its_units(tmp_path, text, seconds, kept):
    """Kept as config.yaml, the card and "time limit (...)" show it: '1 M' was stored as typed, '90' without a unit."""
    cfg = resolve_config(data=str(tmp_path), time_limit=text)
    assert (cfg.time_limit_seconds, cfg.time_limit) == (seconds, kept)


@pytest.mark.parametrize("text", ["1.2.3", ".", "30m1h", "1m1m", "1h30", "5x", "h"])
def test_a_duration_that_is_none_is_one_clear_error(tmp_path, text):
    """'1.2.3' leaked Python's 'could not convert string to float'; '30m1h' and '1m1m' are slips, not sums."""
    with pytest.raises(ImgclfError, match=rf"^time_limit must be a duration such as 90s, 10m, 1.5h or 1h30m, or none "
                                          rf"\(no budget\)\. Received: time_limit={re.escape(repr(text))}$"):
        resolve_config(data=str(tmp_path), time_limit=text)


def test_a_blank_cache_dir_is_refused_not_read_as_the_default(tmp_path):
    """--cache-dir "$DIR" with DIR unset cached under the default without a word (config.yaml kept '')."""
    with pytest.raises(ImgclfError, match=r"^cache_dir must be a folder, or left out for \$IMGCLF_CACHE .*"
                                          r"Received: cache_dir=' '$"):
        resolve_config(data=str(tmp_path), cache_dir=" ")
    result = CliRunner().invoke(app, ["train", str(tmp_path), "--cache-dir", ""])
    assert result.exit_code == 2 and "cache_dir (--cache-dir) must be a folder" in result.output, result.output


def test_cross_validation_advice_for_more_validation_images_offers_fewer_folds_only_above_two(tmp_path):
    from imgclf.pipeline.split_warnings import more_validation_images

    assert more_validation_images(resolve_config(data=str(tmp_path))) == "--val-split, or more images"
    assert more_validation_images(resolve_config(data=str(tmp_path), folds=3)).startswith("fewer --folds")
    assert more_validation_images(resolve_config(data=str(tmp_path), folds=2)) == "more images"  # 2 is the fewest


def test_a_braced_mapping_without_a_space_after_its_colons_says_so(tmp_path):
    """--l2 '{conv:1e-5,dense:1e-4}' (YAML reads conv:1e-5 as a key without a value) was answered
    "l2.conv:1e-5 (--l2) must be a valid number. Received: l2.conv:1e-5=None"."""
    with pytest.raises(ImgclfError, match=r"^l2 must be a mapping such as \{conv: 1e-5, dense: 1e-4\} or "
                                          r"conv=1e-5,dense=1e-4\. .*\('conv:1e-5' is read as one key without a "
                                          r"value: YAML needs a space after each colon\)$"):
        resolve_config(data=str(tmp_path), l2="{conv:1e-5,dense:1e-4}")
    assert resolve_config(data=str(tmp_path), l2="{conv: 1e-5, dense: 1e-4}").l2 == {"conv": 1e-5, "dense": 1e-4}


def test_a_keyword_of_fit_put_among_the_settings_is_named_as_one(tmp_path):
    """fit({"data": ..., "report": False}) listed the 70 settings a mapping may hold and nothing else."""
    import imgclf

    with pytest.raises(ImgclfError, match=r"^setting must be a setting .*setting='report', report=False \(report is "
                                          r"a keyword of the function, not a setting\).*\(settings, report=...\)"):
        imgclf.fit({"data": str(tmp_path), "report": False})


def test_lr_auto_records_the_finder_and_is_no_setting(tmp_path):
    """A run's config.yaml repeated with --config said lr_auto true (a finder chose lr) where none ran."""
    (tmp_path / "run.yaml").write_text("lr: 0.0123\nlr_auto: true\n")
    cfg = resolve_config(data=str(tmp_path), config_file=tmp_path / "run.yaml")
    assert cfg.lr == 0.0123 and cfg.lr_auto is False
    with pytest.raises(ImgclfError, match=r"^lr_auto must be left out: it records that --lr auto chose.*lr='auto'"):
        resolve_config(data=str(tmp_path), lr_auto=True)


def test_missing_data_is_one_clear_error():
    with pytest.raises(ImgclfError, match="data must be given"):
        resolve_config(recipe="s5-model-s")


def test_a_run_that_fails_on_its_data_leaves_no_empty_folder(tmp_path, monkeypatch):
    (tmp_path / "data" / "only").mkdir(parents=True)
    with pytest.raises(ImgclfError, match="data"):
        imgclf.fit(data=str(tmp_path / "data"), out=str(tmp_path / "runs" / "x"))
    assert not (tmp_path / "runs").exists()  # nor the parent it made for the run
    monkeypatch.chdir(tmp_path)  # the default place, runs/<model>-N, as well
    with pytest.raises(ImgclfError, match="data"):
        imgclf.fit(data=str(tmp_path / "nowhere"))
    assert not (tmp_path / "runs").exists()
    (tmp_path / "runs").mkdir()  # a runs/ that was there stays
    with pytest.raises(ImgclfError, match="data"):
        imgclf.fit(data=str(tmp_path / "nowhere"))
    assert (tmp_path / "runs").is_dir() and not any((tmp_path / "runs").iterdir())
    (tmp_path / "mine").mkdir()  # a folder the user made stays, empty or not
    with pytest.raises(ImgclfError):
        imgclf.fit(data=str(tmp_path / "data"), out=str(tmp_path / "mine"))
    assert (tmp_path / "mine").is_dir()
    # run from an empty folder (in empty folders): the default runs/ it made goes, nothing above it. The run
    # folder was absolute and runs/ relative, so the removal never met runs/ and went on up: z, y and x went too
    empty = tmp_path / "chain" / "x" / "y" / "z"
    empty.mkdir(parents=True)
    monkeypatch.chdir(empty)
    with pytest.raises(ImgclfError, match="data"):
        imgclf.fit(data=str(tmp_path / "data"))
    assert empty.is_dir() and not any(empty.iterdir())
    # nor does a sweep's: the lr-find/ it made for lr-find/<model>-1 was left behind, empty
    from imgclf.pipeline.lr_find import lr_find

    with pytest.raises(ImgclfError, match="data"):
        lr_find({"data": str(tmp_path / "data"), "model": "simple_cnn"})
    assert empty.is_dir() and not any(empty.iterdir())
    with pytest.raises(ImgclfError, match=r"^data must be one image folder \(a path\) .*Received: data=''$"):
        imgclf.fit(data="")  # DATA "$D" with D unset: it read the current folder


def test_resuming_a_finished_run_keeps_its_training_time(tmp_path, image_folder):
    from imgclf.records import RunDir

    settings = {"data": str(image_folder), "img_size": 16, "epochs": 2, "batch_size": 8, "progress": False,
                "model_args": {"width": 4}}
    imgclf.fit(settings, out=str(tmp_path / "r"), report=False)
    before = RunDir(tmp_path / "r").read_card().training.train_seconds
    imgclf.fit(resume=str(tmp_path / "r"), report=False)  # nothing left to train
    after = RunDir(tmp_path / "r").read_card().training
    assert after.epochs_run == 2 and before <= after.train_seconds < before + 30  # was reset to ~0.04 s


def test_large_seeds_train(tmp_path, image_folder):
    """The per-step seed is mixed, not multiplied: seeds of millions overflowed torch's 64-bit seed."""
    run = imgclf.fit(data=str(image_folder), img_size=16, epochs=1, batch_size=16, progress=False,
                     model_args={"width": 4, "dropout": 0.2}, seed=20_240_101, out=str(tmp_path / "r"), report=False)
    assert run.epochs_run == 1


def test_a_setting_refused_before_training_leaves_the_out_folder_usable(tmp_path, image_folder):
    settings = {"data": str(image_folder), "img_size": 16, "epochs": 1, "progress": False,
                "model_args": {"width": 4}, "out": str(tmp_path / "r")}
    with pytest.raises(ImgclfError, match="normalize"):
        imgclf.fit(settings, normalize="backbone", report=False)  # simple_cnn has no pretrained backbone
    assert not (tmp_path / "r" / "config.yaml").exists()
    run = imgclf.fit(settings, report=False)  # the corrected command, same --out
    assert run.epochs_run == 1


def test_without_out_each_command_takes_the_next_free_numbered_folder(tmp_path, image_folder, monkeypatch):
    """train, --folds and lr-find number their default folders from one helper: never into an existing one."""
    from imgclf.io import next_free_dir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "simple_cnn-1").mkdir(parents=True)
    (tmp_path / "runs" / "simple_cnn-3").mkdir()
    assert next_free_dir("runs", "simple_cnn") == tmp_path / "runs" / "simple_cnn-2"
    assert next_free_dir("runs", "simple_cnn-folds") == tmp_path / "runs" / "simple_cnn-folds-1"
    run = imgclf.fit(data=str(image_folder), img_size=16, epochs=1, batch_size=16, progress=False,
                     model_args={"width": 4}, report=False)
    assert run.path == tmp_path / "runs" / "simple_cnn-2"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["simple_cnn-1", "simple_cnn-2", "simple_cnn-3"]


def test_a_split_without_a_class_is_warned(tmp_path, capsys):
    """A class of 2 images split three ways leaves one split without it: training says which split lacks which
    class (stderr, even without progress) instead of leaving its scores to be read as covering every class."""
    root = make_image_folder(tmp_path / "d", per_class=12)
    for extra in sorted((root / "fox").iterdir())[2:]:
        extra.unlink()
    run = imgclf.fit(data=str(root), img_size=16, epochs=1, batch_size=16, progress=False, model="simple_cnn",
                     model_args={"width": 4}, out=str(tmp_path / "r"), report=False)
    from imgclf.records import RunDir

    counts = RunDir(run.path).read_dataset().counts
    lacking = [s for s in ("val", "test") if counts[s]["fox"] == 0]
    err = " ".join(capsys.readouterr().err.split())
    assert lacking, counts  # the premise: 2 images cannot reach train, val and test
    for split in lacking:
        assert f"the {split} split holds no image of 1 class ('fox')" in err
    assert err.count("holds no image of") == len(lacking)  # and nothing said of the splits that hold it
    val = sum(counts["val"].values())  # 26 images, 10 % each: the temperature and threshold come from 3 or so
    assert f"warning the val split holds {val} images: the epoch kept, the temperature and the unknown threshold " \
           "are chosen on them" in err


def test_the_small_val_warning_names_what_a_multilabel_run_chooses_on_it(capsys):
    """A multi-label run has no temperature or unknown threshold: its val split chooses the labels' thresholds. A
    run keeping its last epoch without a temperature (S4's protocol) chooses only the unknown threshold there."""
    from types import SimpleNamespace

    from imgclf.config import make_config
    from imgclf.pipeline.split_warnings import warn_about_splits

    usual = make_config(data="data")
    s4 = make_config(data="data", restore_best=False, calibrate="none")
    for task, cfg, chosen, absent in (
            ("multilabel", usual, "the epoch kept and each label's decision threshold are", "temperature"),
            ("single", usual, "the epoch kept, the temperature and the unknown threshold are", "label's"),
            ("single", s4, "the unknown threshold is", "epoch")):
        data = SimpleNamespace(task=task, split_notes=[], splits={"val": [0] * 12}, missing_classes=dict,
                               grouping=None, classes=["a", "b"])
        warn_about_splits(data, "data", Path("runs/r"), cfg)
        err = capsys.readouterr().err
        assert f"val split holds 12 images: {chosen} chosen on them" in " ".join(err.split())
        assert absent not in err
    # the note on a run scored on its val split says the same, from the same words (it named a temperature that
    # a run with calibrate none never fitted)
    from imgclf.evaluation.seen import validation_scores_note

    note, overstates = validation_scores_note(s4, "single")
    assert "on the images that chose the unknown threshold, so its calibration" in note and not overstates


def test_a_class_named_like_the_unknown_verdict_is_warned(capsys):
    """Its predictions and the verdict on an image like none of the classes carry the same label; the 'unknown'
    field tells them apart. A multi-label run has no such verdict."""
    from types import SimpleNamespace

    from imgclf.config import make_config
    from imgclf.pipeline.split_warnings import warn_about_splits

    for task, classes, warned in (("single", ["cat", "unknown"], True), ("single", ["cat", "dog"], False),
                                  ("multilabel", ["cat", "unknown"], False)):
        data = SimpleNamespace(task=task, split_notes=[], splits={"val": [0] * 40}, missing_classes=dict,
                               grouping=None, classes=classes)
        warn_about_splits(data, "data", Path("runs/r"), make_config(data="data"))
        err = " ".join(capsys.readouterr().err.split())
        assert ("a class is named 'unknown', the label predictions give an image like none of the classes" in err) \
            == warned, (task, classes, err)


@pytest.mark.parametrize("how", ["link", "copy"])
def test_one_picture_under_several_classes_is_warned(tmp_path, capsys, how):
    """A multi-label tree (the same file hard-linked into each of its classes) trained without --task multilabel
    trained silently as single-label; copies under two classes are conflicting labels. Each gets its warning."""
    import os
    import shutil

    root = make_image_folder(tmp_path / "d", per_class=12)
    for source in sorted((root / "cat").iterdir())[:2]:
        (os.link if how == "link" else shutil.copyfile)(source, root / "dog" / f"also-{source.name}")
    run = imgclf.fit(data=str(root), img_size=16, epochs=1, batch_size=16, progress=False, model="simple_cnn",
                     model_args={"width": 4}, out=str(tmp_path / "r"))
    err = " ".join(capsys.readouterr().err.split())
    # said again by the report (it was said only on the terminal): dataset.json records it
    several = RunDir(run.path).read_dataset().duplicates.in_several_classes
    assert (several.count, several.linked, several.files) == (2, 2 if how == "link" else 0, 4)
    assert len(several.example) == 2 and all((root / p).is_file() for p in several.example)
    page = " ".join(html.unescape(re.sub("<[^>]+>", " ", (run.path / "report.html").read_text())).split())
    if how == "link":
        assert "2 images sit in several class folders, 2 as links to one file" in err and "--task multilabel" in err
        assert "2 images sit in several class folders, 2 as links to one file" in page
    else:
        # files, not pictures: 10 copies of one placeholder in 3 classes are 30 files with conflicting labels
        assert "4 files (2 pictures) are byte-identical copies under different classes" in err
        assert "imgclf audit" in err
        assert "--task multilabel" not in err
        assert "4 files (2 pictures) are byte-identical copies under different classes" in page


def test_two_corrections_of_the_imbalance_are_warned(tmp_path, capsys):
    """--class-weight balanced with --sampler oversample ran without a note, correcting the imbalance twice."""
    root = make_image_folder(tmp_path / "d", per_class=12)
    common = {"data": str(root), "img_size": 16, "epochs": 1, "batch_size": 16, "progress": False,
              "model": "simple_cnn", "model_args": {"width": 4}}
    imgclf.fit(common, class_weight="balanced", sampler="oversample", out=str(tmp_path / "both"), report=False)
    err = " ".join(capsys.readouterr().err.split())
    assert ("class_weight (--class-weight) balanced with sampler (--sampler) oversample: both correct the class "
            "imbalance") in err
    imgclf.fit(common, class_weight="balanced", out=str(tmp_path / "one"), report=False)
    assert "both correct" not in capsys.readouterr().err


def test_evaluate_and_audit_use_the_cache_the_run_was_trained_with(tmp_path, monkeypatch):
    """`imgclf evaluate` and `imgclf audit --run` looked in the default cache folder, whatever --cache-dir training
    had: refused where that folder is read-only, and a run trained with --cache-budget 0 had its test split cached
    after all."""
    from imgclf.audit import audit

    data = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=6, size=16)
    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "default"))
    run = tmp_path / "run"
    imgclf.fit(data=str(data), out=str(run), model="simple_cnn", model_args={"width": 4}, img_size=16, epochs=1,
               batch_size=4, cache_dir=str(tmp_path / "own"), progress=False, report=False)
    for entry in (tmp_path / "own").rglob("*.npy"):
        entry.unlink()  # evaluation must build it again, there
    imgclf.evaluate(str(run), data=str(data), progress=False)
    assert not (tmp_path / "default").exists()
    assert any((tmp_path / "own").rglob("*.npy"))
    for entry in (tmp_path / "own").rglob("*.npy"):
        entry.unlink()
    audit(str(data), run=str(run), out=str(tmp_path / "audit"), page=False)
    # (where inspect finds a folder's last audit stays in the default folder: inspect knows no run)
    assert not list((tmp_path / "default").rglob("*.npy"))
    assert any((tmp_path / "own").rglob("*.npy"))
