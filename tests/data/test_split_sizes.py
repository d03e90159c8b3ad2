"""Held-out splits on classes of few images: each class gives every held-out split one image, which can take far
more than the fraction asked, and leave none for validation. Both are said, with what to change."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import make_image_folder
from imgclf.config import make_config
from imgclf.data.dataset import prepare_data
from imgclf.errors import ImgclfError
from imgclf.pipeline.split_warnings import warn_about_splits

CLASSES = ("a", "b", "c", "d", "e")


def _prepare(root: Path, tmp_path: Path, **splits):
    return prepare_data(root, 16, "grayscale", splits.get("val", 0.1), splits.get("test", 0.1), 0,
                        cache_dir=str(tmp_path / "cache"), group_duplicates=False)


def test_held_out_splits_far_larger_than_asked_are_warned_and_recorded(tmp_path, capsys):
    """3 images a class, 10 % asked of each: each class gave test and val one image, a third each, and the record
    still said "0.1 of the folder" with no warning; training kept a third of the data unknowingly."""
    data = _prepare(make_image_folder(tmp_path / "few", classes=CLASSES, per_class=3), tmp_path)
    assert {name: len(split) for name, split in data.splits.items()} == {"train": 5, "val": 5, "test": 5}
    assert data.val_source == "0.1 of the folder asked, 33 % taken: at least one image of each class " \
                              "(stratified, seed 0)"
    warn_about_splits(data, ["few"], Path("runs/r"), make_config(data="few"))
    err = " ".join(capsys.readouterr().err.split())
    assert ("the test and val splits took 33 % and 33 % of the images, not the 10 % and 10 % asked: each class "
            "gives every held-out split at least one image, and the smallest class has 3, so training keeps 5 of "
            "15 images") in err and "--test-split 0" in err

    plenty = _prepare(make_image_folder(tmp_path / "plenty", classes=CLASSES, per_class=20), tmp_path)
    assert plenty.val_source == "0.1 of the folder (stratified, seed 0)" and plenty.split_notes == []


def test_an_empty_validation_split_names_the_data_not_the_fraction(tmp_path):
    """2 images a class: test and training kept them all. The error blamed val_split=0.1 ("must be > 0") and
    suggested val_split > 0, which it was; --test-split 0 is the way out, and it works."""
    few = make_image_folder(tmp_path / "two", classes=CLASSES, per_class=2)
    with pytest.raises(ImgclfError, match=r"^data must be a folder with images to spare for validation\. Received: "
                                          r".*val_split=0\.1 \(the validation split is empty: the test split and "
                                          r"training kept every image of each class \(at most 2 per class\)\)\. .*"
                                          r"--test-split 0"):
        _prepare(few, tmp_path)
    data = _prepare(few, tmp_path, test=0.0)
    assert len(data.splits["val"]) == 5 and "test" not in data.splits
    with pytest.raises(ImgclfError, match=r"^val_split must be > 0 when the data has no val/ folder"):
        _prepare(few, tmp_path, val=0.0, test=0.0)


def test_streamed_data_is_normalised_by_its_own_statistics_and_says_what_it_skips(tmp_path):
    """Data larger than the cache budget is streamed from its files: its mean/std were a fixed 0.5 / 0.25 whatever
    `normalize: dataset` asked, and its split skipped the near-duplicate search without a word. The statistics
    are now measured on the files (here all of them: the same as the cached run's), and the skip is said."""
    root = make_image_folder(tmp_path / "data", classes=CLASSES, per_class=8)
    settings = (root, 16, "rgb", 0.2, 0.2, 0)
    cached = prepare_data(*settings, cache_dir=str(tmp_path / "cache"))
    streamed = prepare_data(*settings, cache_dir=str(tmp_path / "cache"), cache_budget=1)
    assert streamed.decoded.pixels is None and cached.decoded.pixels is not None
    streamed.splits["train"] = cached.splits["train"]  # the grouped and ungrouped splits may differ
    for mine, theirs in zip(streamed.pixel_mean_std(), cached.pixel_mean_std()):
        assert mine == pytest.approx(theirs, abs=1e-5) and mine != [0.5] * 3 and mine != [0.25] * 3
    assert any("near-duplicates are not looked for" in note for note in streamed.split_notes)
    assert not any("near-duplicates" in note for note in cached.split_notes)


def test_a_streamed_image_that_changed_since_the_scan_is_named_not_an_internal_error(tmp_path):
    """An image emptied during a long streamed training ended the run after its last epoch with 'internal error:
    DecodeError: empty file (0 bytes)' from the calibration's pass over the validation images."""
    from imgclf.data.cache import pixel_blocks
    from imgclf.errors import ImgclfError

    root = make_image_folder(tmp_path / "data", classes=CLASSES, per_class=8)
    data = prepare_data(root, 16, "rgb", 0.2, 0.2, 0, cache_dir=str(tmp_path / "cache"), cache_budget=1)
    rows = data.splits["val"].indices
    emptied = data.decoded.paths[rows[1]]
    Path(emptied).write_bytes(b"")
    with pytest.raises(ImgclfError, match=rf"^data must be an image that stays readable .*{emptied}.*it was readable "
                                          r"when the command began, now: empty file.*run the command again"):
        list(pixel_blocks(data.decoded, rows, 16, "rgb", "bilinear", 4))


def test_the_note_speaks_of_the_draw_it_made_and_an_empty_val_folder_is_named(tmp_path):
    """Under k-fold the validation split is the fold, not the draw: no note of the draw's share. With train/ and
    test/ folders the share is of train/, and its counts leave test/ out; --test-split 0 is no help there. A val/
    folder of unreadable files was answered with advice about drawing a validation split."""
    few = make_image_folder(tmp_path / "few", classes=CLASSES, per_class=6)
    folded = prepare_data(few, 16, "grayscale", 0.1, 0.1, 0, cache_dir=str(tmp_path / "cache"),
                          group_duplicates=False, fold=(1, 2))
    assert all(not note.startswith("the test and val") and "val split" not in note for note in folded.split_notes)
    splits = make_image_folder(tmp_path / "splits", classes=CLASSES, layout="splits", per_split={"train": 3, "test": 4})
    data = _prepare(splits, tmp_path)
    note = " ".join(data.split_notes)
    assert "the val split took 33 % of train/, not the 10 % asked" in note
    assert "has 3, so training keeps 10 of 15" in note and "--test-split" not in note
    for png in (splits / "train").rglob("*.png"):
        (splits / "val" / png.parent.name).mkdir(parents=True, exist_ok=True)
        (splits / "val" / png.parent.name / png.name).write_bytes(b"not an image")
    with pytest.raises(ImgclfError, match=r"^data must be a val/ folder with at least one readable image\..*"
                                          r"\(val/ holds none\)\. Add images to val/, or remove it"):
        _prepare(splits, tmp_path)


def test_a_streamed_image_emptied_during_training_is_named_and_the_run_resumes_once_it_is_back(tmp_path, monkeypatch):
    """Emptied during a long streamed training, a validation image ended the run after its last epoch with an
    internal DecodeError; the refusal says how to finish, and finishing trains nothing again."""
    import json

    import imgclf
    from imgclf.errors import ImgclfError
    from imgclf.train.callbacks import HistoryWriter

    root = make_image_folder(tmp_path / "data", classes=CLASSES, per_class=10)
    run_dir, kept = tmp_path / "run", {}
    ended = HistoryWriter.on_train_end

    def empty_a_val_image(self, trainer, module):
        ended(self, trainer, module)
        record = json.loads((run_dir / "dataset.json").read_text())
        path = Path(record["root"]) / record["splits"]["val"]["files"][0]
        kept["path"], kept["bytes"] = path, path.read_bytes()
        path.write_bytes(b"")

    monkeypatch.setattr(HistoryWriter, "on_train_end", empty_a_val_image)
    with pytest.raises(ImgclfError, match=rf"now: empty file.*Put the file back as it was, then imgclf train --resume "
                                          rf"{run_dir} finishes the run \(its epochs are saved\)"):
        imgclf.fit(data=str(root), img_size=16, epochs=2, batch_size=8, model_args={"width": 4}, cache_budget="1KB",
                   out=str(run_dir), progress=False, report=False)
    monkeypatch.setattr(HistoryWriter, "on_train_end", ended)
    kept["path"].write_bytes(kept["bytes"])
    run = imgclf.fit(resume=str(run_dir), report=False, progress=False)
    assert run.epochs_run == 2 and run.metrics is not None
