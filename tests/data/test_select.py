"""Choosing the data without preparing it by hand (S3: FER-2013 without `disgust`, at most 2,999 train and 599 test
images per class): --classes / --drop-classes and --per-class-max."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import make_image_folder
from imgclf.cli import app
from imgclf.data.dataset import prepare_data
from imgclf.data.select import Selection
from imgclf.errors import ImgclfError

CLASSES = ("angry", "disgust", "happy", "sad")


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """train/ 20 per class, test/ 10 per class, like FER-2013's layout."""
    return make_image_folder(tmp_path_factory.mktemp("faces"), classes=CLASSES, layout="splits",
                             per_split={"train": 20, "test": 10})


def _prepare(data, seed=0, **selection):
    return prepare_data(data, 8, "rgb", val_split=0.25, seed=seed, selection=Selection(seed=seed, **selection))


def test_per_class_max_caps_the_named_splits_and_leaves_the_others(faces):
    whole = _prepare(faces).counts()
    assert whole["train"]["angry"] == 15 and whole["val"]["angry"] == 5 and whole["test"]["angry"] == 10
    capped = _prepare(faces, per_class_max={"train": 6, "test": 4}).counts()
    assert capped["train"] == dict.fromkeys(CLASSES, 6)
    assert capped["test"] == dict.fromkeys(CLASSES, 4)
    assert capped["val"] == whole["val"]  # not named: not capped
    every = _prepare(faces, per_class_max=3).counts()
    assert all(counts == dict.fromkeys(CLASSES, 3) for counts in every.values())
    assert _prepare(faces, per_class_max=1000).counts() == whole  # a cap above the counts changes nothing


def test_the_capped_choice_is_seeded_and_each_class_draws_its_own(faces):
    one = _prepare(faces, per_class_max={"train": 6})
    again = _prepare(faces, per_class_max={"train": 6})
    other_seed = _prepare(faces, seed=1, per_class_max={"train": 6})
    assert one.paths("train") == again.paths("train")
    assert set(one.paths("train")) != set(other_seed.paths("train"))
    # leaving a class out does not change which images of the other classes are kept (test/ here: the val
    # hold-out drawn from train/ does change with the classes, as it always has)
    capped = _prepare(faces, per_class_max={"test": 4})
    without = _prepare(faces, per_class_max={"test": 4}, drop_classes=["disgust"])
    assert set(without.paths("test")) == {p for p in capped.paths("test") if "/disgust/" not in p}
    assert set(one.paths("train")) <= set(_prepare(faces).paths("train"))


def test_classes_keep_and_drop_classes_leave_out(faces):
    kept = _prepare(faces, classes=["sad", "angry"])
    assert kept.classes == ["angry", "sad"] and kept.describe()["classes"] == ["angry", "sad"]
    assert all(set(counts) == {"angry", "sad"} for counts in kept.counts().values())
    assert all("/happy/" not in p and "/disgust/" not in p for s in kept.splits for p in kept.paths(s))
    dropped = _prepare(faces, drop_classes=["disgust"])
    assert dropped.classes == ["angry", "happy", "sad"]
    assert sum(map(len, dropped.splits.values())) == 3 * 30  # every image of the other classes is still used


def test_a_list_names_classes_as_written_and_the_command_line_strips_the_spaces_around_names():
    """A list (YAML, the API) is taken as written: 'cat ' named the folder 'cat ', and was stripped to drop the
    folder 'cat' beside it; the command line's 'a, b' still means a and b."""
    from imgclf.config import TrainConfig

    exact = TrainConfig(data="d", drop_classes=["cat ", "a,b"])
    assert exact.drop_classes == ["cat ", "a,b"]
    assert TrainConfig(data="d", classes=" cat , dog").classes == ["cat", "dog"]
    with pytest.raises(ValueError, match="an empty name"):
        TrainConfig(data="d", classes=["cat", "  "])


def test_a_name_the_command_line_cannot_give_gets_the_config_file_way(tmp_path):
    """A folder 'empty ' beside 'a,b': the hints said --drop-classes empty (which the command line strips to
    'empty', then refused as unknown, offering 'empty ' again)."""
    from imgclf.data.folder_checks import class_names_flag

    assert class_names_flag("drop_classes", ["empty "]) == \
        "drop_classes: ['empty '] in a --config file (the command line strips spaces and splits at commas)"
    assert class_names_flag("classes", ["cat", "my dog"]) == "--classes 'cat,my dog'"
    data = make_image_folder(tmp_path / "d", classes=("cat", "dog", "empty "), per_class=3)
    with pytest.raises(ImgclfError, match=r"For 'empty ': drop_classes: \['empty '\] in a --config file"):
        _prepare(data, drop_classes=["empty"])


@pytest.mark.parametrize("selection, words", [
    ({"classes": ["angry", "hapy"]}, ["classes must be one of {angry, disgust, happy, sad}", "Did you mean: happy",
                                      "classes='hapy'"]),
    ({"drop_classes": ["contempt"]}, ["drop_classes must be one of {angry, disgust, happy, sad}",
                                      "drop_classes='contempt'"]),
    ({"classes": ["sad"]}, ["at least 2 classes", "leaves ['sad']"]),
    ({"drop_classes": ["angry", "disgust", "happy"]}, ["at least 2 classes", "leaves ['sad']"]),
])
def test_an_unknown_class_or_too_few_left_is_refused_with_the_classes_found(faces, selection, words):
    with pytest.raises(ImgclfError) as info:
        _prepare(faces, **selection)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_train_with_classes_and_per_class_max_from_the_command_line(faces, tmp_path):
    """Seen from outside: dataset.json holds only the kept classes, capped; the model has one output per class."""
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(faces), "--classes", "happy,angry,sad", "--per-class-max",
                                      "train=7,test=3", "--out", str(out), "--epochs", "1", "--img-size", "16",
                                      "--model-args", "width=4", "--batch-size", "8", "--no-progress",
                                      "--val-split", "0.25"])
    assert result.exit_code == 0, result.output
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["classes"] == ["angry", "happy", "sad"]
    assert dataset["counts"]["train"] == {"angry": 7, "happy": 7, "sad": 7}
    assert dataset["counts"]["test"] == {"angry": 3, "happy": 3, "sad": 3}
    assert dataset["counts"]["val"] == {"angry": 5, "happy": 5, "sad": 5}
    assert len(dataset["splits"]["train"]["files"]) == 21
    assert json.loads((out / "model.json").read_text())["classes"] == ["angry", "happy", "sad"]
    weights = load_file(str(out / "model.safetensors"))
    head = [name for name in weights if name.endswith("weight")][-1]
    assert weights[head].shape[0] == 3, (head, weights[head].shape)  # the last layer's outputs
    predictions = (out / "predictions.csv").read_text()
    assert "disgust" not in predictions and predictions.count("\n") == 1 + 9


def test_an_empty_class_folder_is_refused_unless_left_out_and_inspect_lists_it(tmp_path):
    """A class folder made before its images were: training and the scan refuse it on one line that says how to
    leave it out; --drop-classes (or --classes) does, in either layout; inspect reports it with a count of 0."""
    from imgclf.inspect import inspect_folder

    flat = make_image_folder(tmp_path / "flat", classes=("a", "b", "c"), per_class=4, size=8)
    (flat / "later").mkdir()
    with pytest.raises(ImgclfError, match=r"class folder 'later' holds no image.*--drop-classes later"):
        prepare_data(flat, 8, "rgb", val_split=0.25, test_split=0.0)
    (flat / "also").mkdir()  # every empty class named at once, in one hint (named one a run, they took a run each)
    with pytest.raises(ImgclfError, match=r"class folders 'also', 'later' hold no image.*Add their images or remove "
                                          r"the folders .*--drop-classes also,later\)\.$"):
        prepare_data(flat, 8, "rgb", val_split=0.25, test_split=0.0)
    (flat / "also").rmdir()
    for selection in (Selection(drop_classes=["later"]), Selection(classes=["a", "b"])):
        kept = prepare_data(flat, 8, "rgb", val_split=0.25, test_split=0.0, selection=selection)
        assert "later" not in kept.classes and len(kept.classes) >= 2
    summary = inspect_folder(flat)
    assert summary["counts"]["all"]["later"] == 0 and summary["empty_class_folders"] == ["later"]

    splits = make_image_folder(tmp_path / "splits", layout="splits", classes=("a", "b", "c"),
                               per_split={"train": 4, "test": 2}, size=8)
    for image in (splits / "test" / "c").iterdir():
        image.unlink()
    # an empty test/c is c missing from test/, as a missing folder is, not a class to drop (it has training images)
    held = prepare_data(splits, 8, "rgb", val_split=0.25)
    assert held.classes == ["a", "b", "c"] and 2 not in held.splits["test"].labels
    # ... and inspect says so, not that training refuses it (which led to dropping a class with training images)
    shown = CliRunner().invoke(app, ["inspect", str(splits)], env={"COLUMNS": "250"}).output
    assert "the class is missing from test/, whose other classes training scores" in shown
    assert "--drop-classes c" not in shown
    kept = prepare_data(splits, 8, "rgb", val_split=0.25, selection=Selection(drop_classes=["c"]))
    assert kept.classes == ["a", "b"]


def test_caps_per_split_given_over_a_recipe_keep_its_other_splits():
    """`--recipe s3-fer-cnn-small --per-class-max train=6` dropped the recipe's test: 599 (S3's balanced test
    split); a single number still caps every split."""
    from imgclf.pipeline import resolve_config
    from imgclf.recipes import load_recipe

    shipped = load_recipe("s3-fer-cnn-small")["per_class_max"]
    assert shipped["test"] == 599
    merged = resolve_config(recipe="s3-fer-cnn-small", data="d", per_class_max="train=6").per_class_max
    assert merged == {**shipped, "train": 6}
    assert resolve_config(recipe="s3-fer-cnn-small", data="d", per_class_max=5).per_class_max == 5
    assert resolve_config(recipe="s3-fer-cnn-small", data="d", per_class_max={"test": 9}).per_class_max == \
        {**shipped, "test": 9}


def test_the_hint_to_leave_a_class_out_keeps_the_choice_already_made(tmp_path):
    """Following '--drop-classes broken' brought back the class dropped before it; with --classes given, the hint
    named --drop-classes, which cannot be given beside it."""
    import numpy as np
    from PIL import Image

    root = make_image_folder(tmp_path / "d", classes=("a", "b", "c"), per_class=4, size=8)
    (root / "later").mkdir()
    (root / "broken").mkdir()
    (root / "broken" / "x.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "broken" / "y.png")
    (root / "broken" / "y.png").write_bytes((root / "broken" / "y.png").read_bytes()[:20])  # cut short
    # an empty class folder, with another class dropped already
    with pytest.raises(ImgclfError, match=r"--drop-classes broken,later\)"):
        prepare_data(root, 8, "rgb", val_split=0.25, test_split=0.0, selection=Selection(drop_classes=["broken"]))
    # a class with no readable image: the drop given so far, and the --classes given so far
    with pytest.raises(ImgclfError, match=r"leave the class out: --drop-classes later,broken\.$"):
        prepare_data(root, 8, "rgb", val_split=0.25, test_split=0.0, selection=Selection(drop_classes=["later"]))
    with pytest.raises(ImgclfError, match=r"leave the class out: --classes a,b\.$"):
        prepare_data(root, 8, "rgb", val_split=0.25, test_split=0.0,
                     selection=Selection(classes=["a", "broken", "b"]))


def test_a_class_asked_in_another_unicode_form_is_the_folder_read_in_nfc(tmp_path):
    """macOS writes names in NFD; a folder so named is read as its NFC class, and --classes typed either way
    is that class ('classes must be one of {... ïbis}. Did you mean: ïbis?')."""
    import unicodedata

    root = make_image_folder(tmp_path / "d", classes=("a", "b", unicodedata.normalize("NFC", "ïbis")), per_class=4,
                             size=8)
    kept = _prepare(root, classes=["a", unicodedata.normalize("NFD", "ïbis")])
    assert kept.classes == ["a", unicodedata.normalize("NFC", "ïbis")]
    dropped = _prepare(root, drop_classes=[unicodedata.normalize("NFD", "ïbis")])
    assert dropped.classes == ["a", "b"]


@pytest.mark.parametrize("layout", ["flat", "splits"])
def test_unreadable_files_of_a_class_left_out_are_not_listed_as_the_runs(tmp_path, layout):
    root = make_image_folder(tmp_path / "d", classes=("a", "b", "c"), per_class=4, size=8, layout=layout,
                             per_split={"train": 4, "test": 2})
    base = root / "train" if layout == "splits" else root
    (base / "c" / "notes.txt").write_text("not an image")
    (base / "a" / "cut.png").write_bytes(b"\x89PNG\r\n")
    (root / "stray.txt").write_text("beside the classes")
    kept = prepare_data(root, 8, "rgb", val_split=0.25, test_split=0.0,
                        selection=Selection(drop_classes=["c"]))
    listed = [item["path"] for item in kept.skipped]
    assert not any("notes.txt" in p for p in listed), listed
    assert any("cut.png" in p for p in listed), listed
