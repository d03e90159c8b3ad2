"""Group-aware split (issue 21 item 1): the automatic split keeps each near-duplicate group in one split, and
user-given splits that share duplicates get a warning with counts, recorded in dataset.json."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from imgclf.config import make_config
from imgclf.data.dataset import draw_order, prepare_data, stratified_holdout
from imgclf.data.groups import group_holdout
from imgclf.records import DatasetRecord

SIDE = 24
CLASSES = ("cat", "dog", "fox")


def _blob(rng, c: int) -> Image.Image:
    """Three soft blobs of a class-specific size: no two such images are alike."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    img = np.zeros((SIDE, SIDE))
    for _ in range(3):
        cy, cx = rng.uniform(0, SIDE, 2)
        img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (1.5 + 1.5 * c) ** 2))
    return Image.fromarray((230 * img / img.max()).astype(np.uint8))


def _copies(original: Path) -> list[Path]:
    """Two byte copies, a 1-px-shifted copy and a 10 % brighter copy beside `original`."""
    img = Image.open(original)
    out = [original.with_name(f"{original.stem}_copy{k}.png") for k in range(2)]
    for path in out:
        shutil.copyfile(original, path)
    shifted = original.with_name(f"{original.stem}_shift.png")
    img.transform(img.size, Image.Transform.AFFINE, (1, 0, -1, 0, 1, 0), fillcolor=0).save(shifted)
    bright = original.with_name(f"{original.stem}_bright.png")
    ImageEnhance.Brightness(img).enhance(1.1).save(bright)
    return out + [shifted, bright]


def _flat(root: Path, per_class: int = 20, plant: bool = True) -> list[list[str]]:
    """A flat folder; with plant, one group of 5 (original + 4 copies) in each class. Returns the groups."""
    rng = np.random.default_rng(3)
    groups = []
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            _blob(rng, c).save(root / name / f"{k:03d}.png")
        if plant:
            original = root / name / "007.png"
            groups.append([str(original)] + [str(p) for p in _copies(original)])
    return groups


def _split_of(data) -> dict[str, str]:
    return {path: name for name in data.splits for path in data.paths(name)}


def test_the_automatic_split_never_separates_a_planted_group(tmp_path):
    groups = _flat(tmp_path / "d")
    for seed in range(12):
        data = prepare_data(tmp_path / "d", SIDE, "grayscale", 0.2, 0.2, seed, cache_dir=str(tmp_path / "c"))
        where = _split_of(data)
        for group in groups:
            assert len({where[p] for p in group}) == 1, (seed, {p: where[p] for p in group})
        record = DatasetRecord.model_validate(data.describe())
        assert record.duplicates.groups == 3 and record.duplicates.images == 15
        assert record.duplicates.exact_images == 9  # per class the original and its two byte copies
        assert record.duplicates.separated == 0 and record.duplicates.leaks == []
        assert record.duplicates.automatic_splits == ["train", "val", "test"]


def test_turning_it_off_restores_the_plain_split_which_separates_groups(tmp_path):
    groups = _flat(tmp_path / "d")
    separated = 0
    for seed in range(12):
        data = prepare_data(tmp_path / "d", SIDE, "grayscale", 0.2, 0.2, seed, cache_dir=str(tmp_path / "c"),
                            group_duplicates=False)
        where = _split_of(data)
        separated += sum(len({where[p] for p in group}) > 1 for group in groups)
        assert data.describe()["duplicates"] is None
        # the plain split as it was drawn before groups existed
        labels = np.array([CLASSES.index(Path(p).parent.name) for p in data.decoded.paths])
        test = stratified_holdout(labels, 0.2, draw_order(data.decoded.paths, [tmp_path / "d"], seed))
        assert sorted(data.splits["test"].indices.tolist()) == np.flatnonzero(test).tolist()
    assert separated > 0


def test_without_duplicates_the_grouped_split_is_the_plain_split(tmp_path):
    _flat(tmp_path / "d", plant=False)
    for seed in range(4):
        on, off = (prepare_data(tmp_path / "d", SIDE, "grayscale", 0.2, 0.2, seed, cache_dir=str(tmp_path / "c"),
                                group_duplicates=flag) for flag in (True, False))
        assert on.grouping.groups == 0
        for name in ("train", "val", "test"):
            assert on.splits[name].indices.tolist() == off.splits[name].indices.tolist()


def test_group_holdout_is_stratified_deterministic_and_whole_groups():
    labels = np.repeat(np.arange(3), 40)
    ids = np.arange(len(labels))
    ids[[0, 1, 2, 3]] = 0  # a group of 4 in class 0
    ids[[40, 41]] = 40  # a group of 2 in class 1
    for seed in range(20):
        order = np.random.default_rng(seed).integers(0, 2**63, len(labels)).astype(np.uint64)
        a = group_holdout(labels, ids, 0.25, order)
        b = group_holdout(labels, ids, 0.25, order.copy())
        assert (a == b).all()
        assert len(set(a[[0, 1, 2, 3]])) == 1 and len(set(a[[40, 41]])) == 1
        assert Counter(labels[a].tolist()) == {0: 10, 1: 10, 2: 10}  # the plain split's sizes, per class


@pytest.mark.parametrize("folds", [3])
def test_folds_keep_each_group_in_one_fold(tmp_path, folds):
    groups = _flat(tmp_path / "d")
    for seed in range(3):
        fold_of = {}
        for i in range(1, folds + 1):
            data = prepare_data(tmp_path / "d", SIDE, "grayscale", 0.2, 0.2, seed, cache_dir=str(tmp_path / "c"),
                                fold=(i, folds))
            fold_of.update({p: i for p in data.paths("val")})
            test = set(data.paths("test"))
        for group in groups:
            if not set(group) & test:
                assert len({fold_of[p] for p in group}) == 1, (seed, group)


def test_a_class_with_too_few_groups_leaves_the_others_grouped():
    """Class 0 is three groups of ten, too few for five folds: its images go one by one. The others' pairs stayed
    together only if every class had enough groups: one such class divided 12 of the 14 pairs of the others."""
    from imgclf.data.dataset import stratified_folds

    labels = np.array([0] * 30 + [1] * 30 + [2] * 30)
    groups = np.concatenate([np.repeat([0, 1, 2], 10), 100 + np.arange(30) // 2, 200 + np.arange(30) // 2])
    for seed in range(4):
        fold = stratified_folds(labels, 5, seed, groups)
        for g in np.unique(groups[labels > 0]):
            assert len(set(fold[groups == g])) == 1, (seed, g)
        for c in range(3):  # every fold still validates on every class
            assert set(fold[labels == c]) == set(range(5)), (seed, c)


def _given_splits(root: Path) -> None:
    """train/ and test/ with two byte copies and two near copies (shift, brightness) of train images in test/."""
    rng = np.random.default_rng(5)
    for split, count in (("train", 12), ("test", 4)):
        for c, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for k in range(count):
                _blob(rng, c).save(root / split / name / f"{split}{k:03d}.png")
    source = root / "train" / "cat" / "train000.png"
    shutil.copyfile(source, root / "test" / "cat" / "leak_a.png")
    shutil.copyfile(root / "train" / "dog" / "train003.png", root / "test" / "dog" / "leak_b.png")
    img = Image.open(root / "train" / "fox" / "train005.png")
    img.transform(img.size, Image.Transform.AFFINE, (1, 0, -1, 0, 1, 0), fillcolor=0).save(
        root / "test" / "fox" / "leak_c.png")
    ImageEnhance.Brightness(Image.open(source)).enhance(1.1).save(root / "test" / "cat" / "leak_d.png")


def test_a_leak_between_given_splits_is_warned_with_counts_and_recorded(tmp_path, capsys):
    import imgclf

    _given_splits(tmp_path / "d")
    imgclf.fit(data=str(tmp_path / "d"), img_size=SIDE, color="grayscale", epochs=1, batch_size=16,
               progress=False, out=str(tmp_path / "run"), cache_dir=str(tmp_path / "c"))
    err = capsys.readouterr().err
    # leak_a..leak_d: 4 test images with a duplicate in train/, of which leak_a and leak_b are byte copies
    assert (f"4 images in test/ have a near-duplicate in train/ (2 exact copies): test accuracy may be inflated; "
            f"run `imgclf audit {tmp_path / 'd'} --run {tmp_path / 'run'}` for the list") in err
    record = DatasetRecord.model_validate_json((tmp_path / "run" / "dataset.json").read_text())
    assert [leak.model_dump() for leak in record.duplicates.leaks] == [
        {"split": "test", "source": "train", "images": 4, "exact": 2}]
    assert record.sizes["test"] == 16  # a warning, never a refusal: the user's test/ is kept whole
    # and the report, where the test accuracy is read, says it too
    page = (tmp_path / "run" / "report.html").read_text()
    assert ("4 images in test/ have a near-duplicate in train/ (2 exact copies): test accuracy may be inflated; "
            f"run `imgclf audit {tmp_path / 'd'} --run {tmp_path / 'run'}` for the list.") in page
    # and the audit it names finds what training found: the run's size and split, its 4 leaked test images
    from imgclf.audit import audit

    found = audit(tmp_path / "d", run=tmp_path / "run", out=tmp_path / "audit", cache_dir=str(tmp_path / "c"),
                  page=False).record
    leaked = [m.path for g in found.duplicate_groups if "leakage" in g.flags for m in g.members if m.split == "test"]
    assert found.settings.splits == "run" and found.counts.leaked_images == 4
    # evaluating the run's own test split says it too (it was silent, where --data on the same folder warned)
    capsys.readouterr()
    imgclf.evaluate(tmp_path / "run", progress=False)
    assert "4 images in test/ have a near-duplicate in train/ (2 exact copies)" in capsys.readouterr().err
    imgclf.evaluate(tmp_path / "run", split="val", progress=False)  # val has no leak recorded
    assert "near-duplicate in" not in capsys.readouterr().err
    assert sorted(leaked) == ["test/cat/leak_a.png", "test/cat/leak_d.png", "test/dog/leak_b.png",
                              "test/fox/leak_c.png"]


def test_a_class_that_is_one_group_is_still_split_and_the_division_is_warned(tmp_path, capsys):
    """Every image of a class a copy of one picture: no group can be held out whole, so that class is drawn
    image by image (an empty validation class would stop the run) and the record and warning say so."""
    from imgclf.pipeline.split_warnings import warn_about_splits

    _flat(tmp_path / "d", per_class=10, plant=False)
    for k in range(1, 10):
        shutil.copyfile(tmp_path / "d" / "cat" / "000.png", tmp_path / "d" / "cat" / f"{k:03d}.png")
    data = prepare_data(tmp_path / "d", SIDE, "grayscale", 0.2, 0.2, 0, cache_dir=str(tmp_path / "c"))
    cats = {name: int((split.labels == 0).sum()) for name, split in data.splits.items()}
    assert cats["val"] >= 1 and cats["test"] >= 1
    assert data.grouping.separated == 1
    warn_about_splits(data, "d", Path("runs/r"), make_config(data="d"))
    assert "1 near-duplicate group divided between train/, val/, test/" in capsys.readouterr().err


def test_a_held_out_split_filled_only_by_a_class_s_odd_images_is_warned(tmp_path, capsys):
    """Burst shots: most of a class one near-duplicate group, too large to hold out, plus a few odd pictures. Whole
    groups kept out of test leave test the odd ones only, which the run warns about (it said nothing)."""
    from imgclf.pipeline.split_warnings import warn_about_splits

    _flat(tmp_path / "d", per_class=12, plant=False)
    for k in range(12, 40):  # cat: 28 copies of one picture, beside its 12 distinct ones
        shutil.copyfile(tmp_path / "d" / "cat" / "000.png", tmp_path / "d" / "cat" / f"{k:03d}.png")
    data = prepare_data(tmp_path / "d", SIDE, "grayscale", 0.1, 0.1, 0, cache_dir=str(tmp_path / "c"))
    test_cats = data.splits["test"].indices[data.splits["test"].labels == 0]
    group = data.grouping.group_of[test_cats]
    assert (group < 0).all() or len(set(group)) == len(group)  # whole groups kept out: the odd pictures only
    assert {(item["split"], item["class"]) for item in data.grouping.lopsided} >= {("test", "cat")}
    assert not [item for item in data.grouping.lopsided if item["class"] != "cat"]  # the other classes: no group
    warn_about_splits(data, "d", Path("runs/r"), make_config(data="d"))
    said = " ".join(capsys.readouterr().err.split())
    assert f"the test split's {len(test_cats)} 'cat' images are all from outside the near-duplicate groups that " \
           "hold 29 of its 40 images" in said


def test_a_second_run_on_the_same_cache_reuses_the_groups(tmp_path):
    groups = _flat(tmp_path / "d")
    first, second = (prepare_data(tmp_path / "d", SIDE, "grayscale", 0.2, 0.2, 1, cache_dir=str(tmp_path / "c"))
                     for _ in range(2))
    assert not first.grouping.reused and second.grouping.reused
    assert (first.grouping.group_of == second.grouping.group_of).all()
    assert (first.grouping.digests == second.grouping.digests).all()
    assert second.describe()["duplicates"]["exact_images"] == 9
    where = _split_of(second)
    assert all(len({where[p] for p in group}) == 1 for group in groups)


def test_a_large_search_says_it_started_and_a_reused_one_is_silent(tmp_path, capsys, monkeypatch):
    """40,000 images: 52 s of silence between the decode's last line and the first epoch."""
    import imgclf.data.groups as groups_module
    import imgclf.progress as progress_module

    monkeypatch.setattr(groups_module, "ANNOUNCE_FROM", 10)  # these 72 images stand for a large set
    monkeypatch.setattr(progress_module, "SHOW_AFTER_SECONDS", 0)
    _flat(tmp_path / "d")
    prepare_data(tmp_path / "d", SIDE, "grayscale", 0.2, 0.2, 1, cache_dir=str(tmp_path / "c"), progress=True)
    err = capsys.readouterr().err
    assert "near-duplicate search over 72 images: started (--no-group-duplicates skips it" in err
    assert re.search(r"near-duplicate search over 72 images: 72 images in [0-9.]+ s, 3 groups", err), err
    prepare_data(tmp_path / "d", SIDE, "grayscale", 0.2, 0.2, 1, cache_dir=str(tmp_path / "c"), progress=True)
    assert "near-duplicate search" not in capsys.readouterr().err  # kept beside the cache: no search to announce


def test_the_suggested_audit_is_ready_to_paste():
    """Training printed `imgclf audit /x/my data --run /x/my run` (the shell reads 4 arguments), and a merged
    run's folders joined as if one audit read several."""
    from imgclf.data.groups import audit_command

    assert audit_command(["/x/my data"], 28, "/x/my run") == "imgclf audit '/x/my data' --run '/x/my run'"
    assert audit_command("/x/d", 28) == "imgclf audit /x/d --img-size 28"
    assert audit_command(["/x/a", "/x/b c"], 28, "/x/r") == "imgclf audit /x/a --run /x/r (and the same for '/x/b c')"
    assert audit_command(["/x/\x1b[31mred"], 28, "/x/r") == "imgclf audit '/x/\\x1b[31mred' --run /x/r"
    # a run named relative to where a command ran (`imgclf calibrate runs/x` rewrote the report's line so)
    import os

    assert audit_command("/x/d", 28, "runs/r") == f"imgclf audit /x/d --run {os.path.abspath('runs/r')}"


def test_a_new_class_leaves_the_grouped_split_of_the_others_as_it_was(tmp_path):
    groups = _flat(tmp_path / "d")
    before = prepare_data(tmp_path / "d", SIDE, "grayscale", 0.2, 0.2, 5, cache_dir=str(tmp_path / "c"))
    rng = np.random.default_rng(9)
    (tmp_path / "d" / "ant").mkdir()
    for k in range(20):
        _blob(rng, 1).save(tmp_path / "d" / "ant" / f"{k:03d}.png")
    after = prepare_data(tmp_path / "d", SIDE, "grayscale", 0.2, 0.2, 5, cache_dir=str(tmp_path / "c"))
    was, now = _split_of(before), _split_of(after)
    assert {p: now[p] for p in was} == was
    assert after.grouping.groups >= len(groups)


def test_a_group_is_held_out_as_often_as_a_single_image():
    """A group took its lowest member's key, and the least of five keys comes early: at fraction 0.1, groups of
    five were held out at 0.21 of their images against 0.063 of single images, so val and test over-weighted
    repeated pictures (burst shots, popular images) and were no random sample."""
    labels = np.repeat(np.arange(2), 2000)
    ids = np.arange(len(labels))
    for start in range(0, len(labels), 10):  # half of each block of ten in a group of five, the rest alone
        ids[start:start + 5] = start
    grouped = np.isin(np.arange(len(labels)) % 10, range(5))
    shares = []
    for seed in range(5):
        order = np.random.default_rng(seed).integers(0, 2**63, len(labels)).astype(np.uint64)
        held = group_holdout(labels, ids, 0.1, order)
        shares.append((held[grouped].mean(), held[~grouped].mean()))
    in_groups, alone = np.mean(shares, axis=0)
    assert abs(in_groups - 0.1) < 0.03 and abs(alone - 0.1) < 0.03


def test_the_example_of_a_picture_under_several_classes_names_two_of_its_classes(tmp_path):
    """a/x.png, a/x_copy.png and b/x.png, one picture: the warning's example named the two copies under a, not the
    file under b that made it a conflict."""
    from types import SimpleNamespace

    from imgclf.data.groups import Grouping
    from imgclf.data.several_classes import files_in_several_classes

    paths = [str(tmp_path / p) for p in ("a/x.png", "a/x_copy.png", "a/y.png", "b/x.png", "b/z.png")]
    grouping = Grouping(group_of=np.array([0, 0, -1, 0, -1]), digests=np.array(["d", "d", "", "d", ""]), groups=1,
                        seconds=0.0, threshold=0.9)
    splits = {"train": SimpleNamespace(indices=np.array([0, 1, 2, 4]), labels=np.array([0, 0, 0, 1]), targets=None),
              "val": SimpleNamespace(indices=np.array([3]), labels=np.array([1]), targets=None)}
    found = files_in_several_classes(grouping, splits, paths)
    example = found.example
    assert (found.count, found.linked, found.files) == (1, 0, 3)
    assert example[:2] == [paths[0], paths[3]] and sorted(example) == sorted(paths[i] for i in (0, 1, 3))


def test_a_leak_from_the_val_split_carved_from_train_names_no_val_folder():
    """With train/ and test/ folders and val drawn from train/, the warning named 'val/', a folder the data lacks."""
    from imgclf.data.groups import leak_warning

    leak = {"split": "test", "source": "val", "images": 1, "exact": 1}
    said = leak_warning(leak, "imgclf audit data --img-size 16", drawn=["train", "val"])
    assert said.startswith("1 image in test/ has a near-duplicate in the val split drawn from train/ (1 exact copy)")
    assert leak_warning(leak, "imgclf audit data --img-size 16").startswith("1 image in test/ has a near-duplicate "
                                                                             "in val/")


def test_copies_of_a_multilabel_picture_conflict_by_their_label_sets_not_their_rarest_label(tmp_path):
    """A multi-label split's `labels` holds each image's rarest label only: two copies listed as {cat} and
    {cat, dog} share it, and their conflict is in the sets."""
    from types import SimpleNamespace

    from imgclf.data.groups import Grouping
    from imgclf.data.several_classes import files_in_several_classes

    paths = [str(tmp_path / p) for p in ("x.png", "x_copy.png", "y.png", "y_copy.png")]
    grouping = Grouping(group_of=np.array([0, 0, 1, 1]), digests=np.array(["d", "d", "e", "e"]), groups=2,
                        seconds=0.0, threshold=0.9)
    targets = np.array([[1, 0], [1, 1], [0, 1], [0, 1]], dtype=np.uint8)
    splits = {"train": SimpleNamespace(indices=np.arange(4), labels=np.array([0, 0, 1, 1]), targets=targets)}
    found = files_in_several_classes(grouping, splits, paths)
    assert (found.count, found.linked, found.files) == (1, 0, 2) and sorted(found.example) == paths[:2]


def test_a_class_whose_only_image_copies_another_class_is_refused_naming_the_copy(tmp_path):
    """A one-image class whose image is a byte copy of one under another class: the group goes to the other class
    and may be held out whole, taking the class's only image. The refusal read "no usable training image, 0 files
    skipped" for a readable image; it now names the copy and how to draw without groups."""
    from conftest import make_image_folder

    from imgclf.errors import ImgclfError

    root = make_image_folder(tmp_path / "d", per_class=20)
    (root / "owl").mkdir()
    shutil.copyfile(sorted((root / "cat").iterdir())[3], root / "owl" / "only.png")
    refused = 0
    for seed in range(8):
        try:
            prepare_data(str(root), img_size=16, seed=seed, progress=False, val_split=0.2, test_split=0.2)
        except ImgclfError as exc:
            text = str(exc)
            assert "no usable training image for ['owl']; 0 files skipped; its images were held out whole with " \
                   "their near-duplicates under other classes ('owl/only.png' is a copy of 'cat/" in text, text
            assert "--no-group-duplicates" in text and "--drop-classes owl" in text
            refused += 1
            # drawn one by one, the same seed trains
            prepare_data(str(root), img_size=16, seed=seed, progress=False, val_split=0.2, test_split=0.2,
                         group_duplicates=False)
    assert refused
