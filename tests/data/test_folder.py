import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import make_image_folder
from imgclf.cli import app
from imgclf.data.dataset import prepare_data, stratified_holdout
from imgclf.data.folder import count_skipped, require_images, scan_folder
from imgclf.data.merge import scan_folders
from imgclf.errors import ImgclfError
from imgclf.records import RunDir


def test_flat_folder_classes_sorted_and_hidden_ignored(tmp_path):
    make_image_folder(tmp_path, classes=("zebra", "ant"), per_class=4)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "x.png").write_bytes(b"")
    (tmp_path / "ant" / ".DS_Store").write_bytes(b"junk")
    scan = scan_folder(tmp_path)
    assert scan.layout == "flat"
    assert scan.classes == ["ant", "zebra"]
    assert len(scan.files["all"]) == 8
    assert not any(".DS_Store" in s["path"] for s in scan.skipped)


def test_images_in_subfolders_of_a_class_folder_are_that_class_at_any_depth(tmp_path):
    """As README says: root/cat/indoor/1.png is a cat; no subfolder becomes a class of its own."""
    make_image_folder(tmp_path, classes=("cat", "dog"), per_class=4)
    deep = tmp_path / "cat" / "indoor" / "sofa"
    deep.mkdir(parents=True)
    for name in ("a.png", "b.png"):
        shutil.copyfile(tmp_path / "dog" / sorted(os.listdir(tmp_path / "dog"))[0], deep / name)
    scan = scan_folder(tmp_path)
    assert scan.classes == ["cat", "dog"]
    nested = [(Path(p).name, c) for p, c in scan.files["all"] if "sofa" in p]
    assert sorted(nested) == [("a.png", "cat"), ("b.png", "cat")], nested


def test_names_starting_with_two_underscores_are_the_users(tmp_path):
    """Every name starting with "__" was left out without a word: a class `__background__` vanished from inspect
    and training, and files `__img_000.png` from every listing. Only what systems leave behind is hidden."""
    make_image_folder(tmp_path, classes=("__background__", "cat"), per_class=4)
    shutil.copy(next((tmp_path / "cat").iterdir()), tmp_path / "cat" / "__img_000.png")
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "._x.png").write_bytes(b"junk")
    (tmp_path / "cat" / "Thumbs.db").write_bytes(b"junk")
    scan = scan_folder(tmp_path)
    assert scan.classes == ["__background__", "cat"]
    assert len(scan.files["all"]) == 9 and any(p.endswith("__img_000.png") for p, _ in scan.files["all"])
    assert not any("MACOSX" in s["path"] or "Thumbs" in s["path"] for s in scan.skipped)


def test_what_windows_and_a_synology_nas_leave_in_folders_is_neither_a_class_nor_an_image(tmp_path):
    """@eaDir and $RECYCLE.BIN were read as classes (training refused until both were dropped), and the NAS's
    thumbnails (cat/@eaDir/1.png/SYNOFILE_THUMB_S.jpg) as more images of their class."""
    make_image_folder(tmp_path, classes=("cat", "dog"), per_class=4)
    photo = next((tmp_path / "cat").iterdir())
    for folder in (tmp_path / "@eaDir" / "x", tmp_path / "cat" / "@eaDir" / photo.name, tmp_path / "$RECYCLE.BIN",
                   tmp_path / "#recycle" / "bird", tmp_path / "dog" / "$Recycle.Bin"):  # (NTFS since Vista)
        folder.mkdir(parents=True)
        shutil.copy(photo, folder / "SYNOFILE_THUMB_S.jpg")
    for junk in ("desktop.ini", "Icon\r"):
        (tmp_path / "dog" / junk).write_bytes(b"[.ShellClassInfo]")
    scan = scan_folder(tmp_path)
    assert scan.classes == ["cat", "dog"] and len(scan.files["all"]) == 8 and scan.skipped == []


def test_split_layout_with_train_and_test_splits_validation_off_train(tmp_path):
    make_image_folder(tmp_path, layout="splits", per_split={"train": 20, "test": 5})
    # group_duplicates off: this folder's images of one class are near-duplicates of each other, so a
    # group-aware draw cannot hit 5 per class exactly (tests/data/test_group_split.py covers that draw)
    data = prepare_data(tmp_path, 16, "rgb", val_split=0.25, seed=0, group_duplicates=False)
    assert data.scan.layout == "splits"
    assert len(data.splits["test"]) == 15
    assert len(data.splits["val"]) == 15 and len(data.splits["train"]) == 45
    test_files = set(data.paths("test"))
    assert all("/test/" in p for p in test_files)
    assert not test_files & set(data.paths("val")), "validation must never come from the test split"
    assert "train/" in data.val_source


def test_flat_split_is_stratified_and_seeded(tmp_path):
    make_image_folder(tmp_path, classes=("a", "b"), per_class=30)
    one = prepare_data(tmp_path, 16, "rgb", val_split=0.1, test_split=0.2, seed=1)
    two = prepare_data(tmp_path, 16, "rgb", val_split=0.1, test_split=0.2, seed=1)
    other = prepare_data(tmp_path, 16, "rgb", val_split=0.1, test_split=0.2, seed=2)
    assert one.paths("test") == two.paths("test")
    assert one.paths("test") != other.paths("test")
    assert one.counts()["test"] == {"a": 6, "b": 6}
    assert one.counts()["val"] == {"a": 3, "b": 3}
    all_paths = one.paths("train") + one.paths("val") + one.paths("test")
    assert len(all_paths) == len(set(all_paths)) == 60


def _class_splits(data, cls: str) -> dict[str, set[str]]:
    return {name: {p for p in data.paths(name) if f"/{cls}/" in p} for name in ("train", "val", "test")}


def test_adding_a_class_or_images_to_another_leaves_a_class_split_as_it_was(tmp_path):
    """A class's draw depends on its own files alone: a new class (sorted first, so a generator drawing class after
    class would move every other class) or new images in another class leave it as it was; new images in the class
    itself move at most the images at the edge of its shares."""
    make_image_folder(tmp_path, classes=("b", "c"), per_class=30)

    def draw():
        return prepare_data(tmp_path, 16, "rgb", val_split=0.1, test_split=0.2, seed=4, group_duplicates=False)

    before = draw()
    make_image_folder(tmp_path, classes=("a",), per_class=30, seed=1)
    after_class = draw()
    for cls in ("b", "c"):
        assert _class_splits(after_class, cls) == _class_splits(before, cls)
    for j in range(3):
        shutil.copyfile(tmp_path / "a" / f"a_{j:03d}.png", tmp_path / "b" / f"b_new{j}.png")
    after_images = draw()
    assert _class_splits(after_images, "c") == _class_splits(before, "c")
    old, new = _class_splits(before, "b"), _class_splits(after_images, "b")
    assert len(new["test"]) == 7  # 0.2 of 33
    assert len(old["test"] & new["test"]) >= 4  # at most the 3 new images (and none of the old) push old ones out
    assert len(new["test"] - old["test"] - {p for p in new["test"] if "_new" in p}) <= 1  # take grew by one


def test_a_folder_reached_through_a_link_draws_as_the_folder_itself(tmp_path):
    """Merged folders are stored resolved: a link to one named its images '../../link/cat/x.png' against the
    resolved root, and the same files drew another split in each place the link sat."""
    from imgclf.data.dataset import draw_order

    make_image_folder(tmp_path / "store" / "a", classes=("b", "c"), per_class=5)
    (tmp_path / "link").symlink_to(tmp_path / "store" / "a", target_is_directory=True)
    files = sorted(str(p.relative_to(tmp_path / "store" / "a")) for p in (tmp_path / "store" / "a").rglob("*.png"))
    real = draw_order([str(tmp_path / "store" / "a" / f) for f in files], [tmp_path / "store" / "a"], 3)
    through_link = draw_order([str(tmp_path / "link" / f) for f in files], [(tmp_path / "link").resolve()], 3)
    assert real.tolist() == through_link.tolist()


def test_stratified_holdout_keeps_a_training_item_per_class():
    labels = np.array([0] * 10 + [1] * 2 + [2])
    mask = stratified_holdout(labels, 0.5, np.arange(len(labels), dtype=np.uint64)[::-1].copy())
    for c in (0, 1, 2):
        assert (~mask & (labels == c)).any()
    assert mask[labels == 0].sum() == 5


@pytest.mark.parametrize("make, message", [
    (lambda p: (p / "a").mkdir() or make_image_folder(p, classes=("b", "c"), per_class=2), "holds no image"),
    (lambda p: make_image_folder(p, classes=("only",), per_class=3), "at least 2 class folders"),
    (lambda p: (make_image_folder(p, layout="splits", classes=("a", "b"), per_split={"train": 2}),
                make_image_folder(p, layout="splits", classes=("a", "c"), per_split={"test": 2})),
     r"split folders hold only classes of train/.*test/ has \['c'\], which train/ lacks\)\. Give train/ images"),
    # a class named alike but for case is the same class misspelt: moving its folder out of test/ would lose it
    (lambda p: (make_image_folder(p, layout="splits", classes=("Cat", "dog"), per_split={"train": 2}),
                make_image_folder(p, layout="splits", classes=("cat ", "dog"), per_split={"test": 2})),
     r"test/ has \['cat '\], which train/ lacks\)\. Class names differ from train/'s only in case or spaces: "
     r"rename test/'cat ' to 'Cat'"),
    # test/ holds the class under both names (merge, not rename), and a class of its own (the move-out advice)
    (lambda p: (make_image_folder(p, layout="splits", classes=("cat", "dog"), per_split={"train": 2}),
                make_image_folder(p, layout="splits", classes=("cat", "Cat", "dog", "zzz"), per_split={"test": 2})),
     r"test/ has \['Cat', 'zzz'\], which train/ lacks\)\. Class names differ from train/'s only in case or "
     r"spaces: merge test/'Cat' into 'cat' .*; give train/ images of \['zzz'\], or move their folders out of test/"),
    (lambda p: make_image_folder(p, layout="splits", classes=("a", "b"), per_split={"test": 2}), "contains train/ .*no train/"),
])
def test_bad_folders_give_clear_errors(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(ImgclfError, match=message):
        scan_folder(tmp_path)


def test_a_split_folder_without_a_class_of_train_is_scored_on_the_others(tmp_path, capsys):
    """A rare class with no val/ image is a data set, not an error: the split holds none of it, and training says
    so (as for an automatic split too small for a class)."""
    import shutil

    import imgclf

    make_image_folder(tmp_path / "d", layout="splits", per_split={"train": 8, "val": 3, "test": 3})
    shutil.rmtree(tmp_path / "d" / "val" / "fox")
    scan = scan_folder(tmp_path / "d")
    assert scan.classes == ["cat", "dog", "fox"] and not [c for _, c in scan.files["val"] if c == "fox"]
    run = imgclf.fit(data=str(tmp_path / "d"), img_size=16, epochs=1, batch_size=8, model_args={"width": 4},
                     out=str(tmp_path / "run"), report=False)
    assert RunDir(run.path).read_dataset().counts["val"]["fox"] == 0
    assert "the val split holds no image of 1 class ('fox')" in " ".join(capsys.readouterr().err.split())


def test_an_empty_class_folder_in_val_is_a_missing_class_and_an_empty_split_is_refused_naming_it(tmp_path):
    import shutil

    make_image_folder(tmp_path / "d", layout="splits", per_split={"train": 4, "val": 2, "test": 2})
    for f in (tmp_path / "d" / "val" / "fox").iterdir():
        f.unlink()  # an empty val/fox: as if it were missing (it was refused, suggesting to drop fox everywhere)
    scan = scan_folder(tmp_path / "d")
    assert scan.classes == ["cat", "dog", "fox"] and not scan.empty
    # training scans with allow_empty (so that --drop-classes can leave an empty train/ class out) and then
    # requires images: an empty val/ or test/ class folder was refused there, with a hint to drop the class
    assert require_images(scan_folder(tmp_path / "d", allow_empty=True)).classes == ["cat", "dog", "fox"]
    for split in ("test", "val"):
        shutil.rmtree(tmp_path / "d" / split)
        (tmp_path / "d" / split / "cat").mkdir(parents=True)  # a split folder with no image at all
        with pytest.raises(ImgclfError, match=rf"{split}/ holds no image in its class folders.*remove {split}/"):
            scan_folder(tmp_path / "d")
        reported = scan_folder(tmp_path / "d", allow_empty=True)  # inspect reports it as it is
        assert (("cat", f"{split}/cat")) in reported.empty_elsewhere
        with pytest.raises(ImgclfError, match=rf"{split}/ holds no image in its class folders.*remove {split}/"):
            require_images(reported)  # ... and training refuses it before decoding anything
        shutil.rmtree(tmp_path / "d" / split)


def test_a_test_folder_of_unlabelled_images_is_refused_before_training_saying_they_have_no_class(tmp_path):
    """Kaggle's layout: train/<class>/ beside a test/ of loose images. Training ran to its end and failed for
    want of a test image; resuming failed the same way."""
    make_image_folder(tmp_path / "d", layout="splits", classes=("a", "b"), per_split={"train": 4})
    _loose_pngs(tmp_path / "d" / "test", 3)
    with pytest.raises(ImgclfError, match=r"test/ holds no image in its class folders; 3 images lie loose in it.*"
                                          r"no label.*imgclf predict"):
        prepare_data(tmp_path / "d", img_size=16, cache_dir=tmp_path / "cache", progress=False)
    assert {Path(s["path"]).name for s in scan_folder(tmp_path / "d", allow_empty=True).skipped} == \
        {f"loose_0{i}.png" for i in range(3)}


@pytest.mark.parametrize("names", [("training", "testing"), ("Training_Set", "test_set")])
def test_kaggle_split_folder_names_are_splits_not_classes(tmp_path, names):
    """Read as classes, training/ and testing/ (or training_set/ and test_set/) trained a two-class model of
    the split folders, each class the other's class folders flattened, without a word."""
    make_image_folder(tmp_path / names[0], classes=("glioma", "notumor"), per_class=3)
    make_image_folder(tmp_path / names[1], classes=("glioma", "notumor"), per_class=1)
    scan = scan_folder(tmp_path)
    assert scan.layout == "splits" and scan.classes == ["glioma", "notumor"]
    assert list(scan.files) == ["train", "test"] and len(scan.files["test"]) == 2


def test_class_folders_differing_only_in_unicode_normal_form_are_one_class(tmp_path):
    """macOS writes names in NFD: a val/café/ from a Mac beside train/café/ was 'a class train/ lacks'; two merged
    folders trained two classes that print alike."""
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    make_image_folder(tmp_path / "d" / "train", classes=(nfc, "tea"), per_class=3)
    make_image_folder(tmp_path / "d" / "val", classes=(nfd, "tea"), per_class=1)
    scan = scan_folder(tmp_path / "d")
    assert scan.classes == [nfc, "tea"] and sorted(c for _, c in scan.files["val"]) == [nfc, "tea"]
    make_image_folder(tmp_path / "m1", classes=(nfc, "tea"), per_class=2)
    make_image_folder(tmp_path / "m2", classes=(nfd, "tea"), per_class=2)
    assert scan_folders([tmp_path / "m1", tmp_path / "m2"]).classes == [nfc, "tea"]


def test_missing_path_names_the_argument(tmp_path):
    with pytest.raises(ImgclfError, match=r"data must be an existing folder.*Received: data="):
        scan_folder(tmp_path / "nope")


def test_color_auto_detects_grayscale(tmp_path):
    make_image_folder(tmp_path, mode="L", per_class=3)
    data = prepare_data(tmp_path, 8, "auto", val_split=0.34, test_split=0.0)
    assert data.color == "grayscale" and data.decoded.pixels.shape[-1] == 1


def _loose_pngs(folder, count):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(folder / f"loose_{i:02d}.png")


@pytest.mark.parametrize("layout", ["flat", "splits"])
def test_images_without_class_folders_are_counted_and_the_layout_explained(tmp_path, layout):
    # the first thing a new user tries: a folder of images, no class folders (its name with a space: the command
    # suggested is quoted, as a shell takes it)
    root = tmp_path / "my photos"
    _loose_pngs(root / "train" if layout == "splits" else root, 23)
    where = "train/" if layout == "splits" else "it"
    with pytest.raises(ImgclfError) as err:
        scan_folder(root)
    message = str(err.value)
    assert f"0 class folders; 23 images directly in {where}, outside any class folder" in message, message
    assert "DATA/<class>/*.png" in message and "train/ (and val/, test/)" in message
    assert "Move each image into a folder named after its class" in message
    images = root / "train" if layout == "splits" else root
    assert f"use `imgclf predict RUN '{images}'`" in message, message


def test_one_class_folder_and_loose_images_say_both(tmp_path):
    make_image_folder(tmp_path, classes=("cat",), per_class=2)
    _loose_pngs(tmp_path, 1)
    with pytest.raises(ImgclfError, match=r"1 class folder \('cat'\); 1 image directly in it"):
        scan_folder(tmp_path)


def test_loose_images_beside_class_folders_are_listed_as_skipped(tmp_path):
    make_image_folder(tmp_path, classes=("a", "b"), per_class=3)
    _loose_pngs(tmp_path, 2)
    (tmp_path / "README.txt").write_text("not an image, not data: not listed")
    (tmp_path / ".hidden.png").write_bytes(b"")
    scan = scan_folder(tmp_path)
    assert scan.classes == ["a", "b"] and len(scan.files["all"]) == 6
    loose = {Path(s["path"]).name: s["reason"] for s in scan.skipped}
    assert sorted(loose) == ["loose_00.png", "loose_01.png"]
    assert all("not in a class folder" in reason for reason in loose.values())
    # and they reach dataset.json's skipped list through the prepared data
    data = prepare_data(tmp_path, 8, "rgb", val_split=0.34, test_split=0.0)
    assert {Path(s["path"]).name for s in data.describe()["skipped"]} == set(loose)


def test_loose_images_in_a_split_layout_are_listed_as_skipped(tmp_path):
    make_image_folder(tmp_path, layout="splits", classes=("a", "b"), per_split={"train": 2, "test": 1})
    _loose_pngs(tmp_path, 1)  # beside train/ and test/
    _loose_pngs(tmp_path / "test", 1)  # beside test/'s class folders
    reasons = {str(Path(s["path"]).relative_to(tmp_path)): s["reason"] for s in scan_folder(tmp_path).skipped}
    assert reasons.keys() == {"loose_00.png", "test/loose_00.png"}
    assert "not in train/, val/ or test/" in reasons["loose_00.png"]
    assert "not in a class folder" in reasons["test/loose_00.png"]


def test_folders_beside_the_splits_are_listed_as_skipped_and_a_split_alias_is_read(tmp_path):
    """holdout/, testing/ or a stray class folder beside train/ are never read; they were left out without a
    word. Validation/ (any case) is the val split, and hidden folders stay unlisted."""
    make_image_folder(tmp_path, layout="splits", classes=("a", "b"), per_split={"train": 3, "test": 1})
    make_image_folder(tmp_path / "holdout", classes=("a", "b"), per_class=2)
    make_image_folder(tmp_path / "Validation", classes=("a", "b"), per_class=1)
    make_image_folder(tmp_path, classes=("c",), per_class=2)
    (tmp_path / ".git").mkdir()
    scan = scan_folder(tmp_path)
    assert sorted(scan.files) == ["test", "train", "val"] and scan.classes == ["a", "b"]
    reasons = {s["path"]: s["reason"] for s in scan.skipped}
    assert sorted(reasons) == [f"{tmp_path / name}{os.sep}" for name in ("c", "holdout")]
    assert all("a folder beside train/ that is not a split" in r and "rename it val/ or test/" in r
               for r in reasons.values())
    assert count_skipped(list(reasons)) == "2 folders"
    assert count_skipped([*reasons, "x.png"]) == "1 file and 2 folders"
    out = CliRunner().invoke(app, ["inspect", str(tmp_path)], env={"COLUMNS": "250"}).output
    assert "2 folders cannot be used" in out and "holdout" in out


@pytest.mark.parametrize("name, classes", [("test", ("test", "control")), ("Train", ("Train", "control"))])
def test_a_class_named_like_a_split_is_told_to_rename_it(tmp_path, name, classes):
    make_image_folder(tmp_path, classes=classes, per_class=2)
    with pytest.raises(ImgclfError) as err:
        scan_folder(tmp_path)
    assert f"if {name}/ is a class, rename it" in str(err.value).lower().replace(name.lower(), name), str(err.value)


@pytest.mark.parametrize("link", ["again", "zlink"])  # before and after the real folder's name
def test_a_link_back_up_is_a_loop_and_a_second_link_is_read_once(tmp_path, link):
    """Both were called "symlink loop (folder already visited)"; a second link to a folder is not a loop, and the
    real folder is read through its own path whatever the link's name."""
    import os

    root = make_image_folder(tmp_path / "d", classes=("cat", "dog"), per_class=3)
    (root / "cat" / "sub").mkdir()
    os.rename(root / "cat" / "cat_000.png", root / "cat" / "sub" / "cat_000.png")
    os.symlink("sub", root / "cat" / link)  # a second way to the same folder
    os.symlink("..", root / "cat" / "sub" / "up")  # back to cat/, which holds it
    scan = scan_folder(root)
    reasons = {Path(s["path"]).name: s["reason"] for s in scan.skipped}
    assert set(reasons) == {"up", link}, reasons
    assert reasons["up"].startswith("symlink loop")
    assert reasons[link] == f"the same folder as {root / 'cat' / 'sub'} (read once, there)"
    # folders, counted as folders ("2 files cannot be used" said inspect)
    assert count_skipped([s["path"] for s in scan.skipped]) == "2 folders"
    cats = sorted(p for p, c in scan.files["all"] if c == "cat")
    assert cats == sorted(str(root / "cat" / n) for n in ("cat_001.png", "cat_002.png", "sub/cat_000.png"))


@pytest.mark.parametrize("name, said", [
    ("labels.csv", "an index file of label sets, which only a multi-label run's train, evaluate and inspect read, "
                   "each on its own"),
    ("labels.json", "a file; an index of label sets (a multi-label run's data) is a .csv, .jsonl, .ndjson file"),
    ("notes.md", "a file"),
])
def test_a_file_where_a_folder_goes_says_what_kind_of_file(tmp_path, name, said):
    """Two indexes given to train, an index given to audit, or a .json index all read "(a file)", which told the
    user neither that the index was fine nor which suffixes an index may have."""
    from imgclf.data.folder import scan_folder

    (tmp_path / name).write_text("path,labels\n")
    with pytest.raises(ImgclfError) as caught:
        scan_folder(tmp_path / name)
    assert str(caught.value).endswith(f"({said})")


def test_a_run_directory_given_as_data_is_named_as_a_run(tiny_run, tmp_path):
    """Its checkpoints/, plots/ and evaluations/ were taken for class folders: inspect listed them as classes,
    train suggested --drop-classes checkpoints."""
    with pytest.raises(ImgclfError, match=r"^data must be a folder of class folders.*a run directory, not an image "
                                          r"folder.*imgclf train --resume"):
        scan_folder(tiny_run)
    result = CliRunner().invoke(app, ["inspect", str(tiny_run)])
    assert result.exit_code == 2 and "a run directory, not an image folder" in result.output
    import shutil

    shutil.copytree(tiny_run, tmp_path / "cv" / "fold-1")
    with pytest.raises(ImgclfError, match=r"a cross-validation folder, not an image folder.*runs. config.yaml say"):
        scan_folder(tmp_path / "cv")
    # a data set that keeps its own settings beside the classes is still one
    data = make_image_folder(tmp_path / "data", per_class=2)
    (data / "config.yaml").write_text("model: simple_cnn\n")
    assert len(scan_folder(data).classes) >= 2


def test_an_archive_that_nests_each_split_in_a_folder_of_its_name_is_told_so(tmp_path):
    """Kaggle's cats and dogs unpack as training_set/training_set/<class>/: the error named train/ and test/,
    folders the user does not have, and said nothing of the extra level."""
    make_image_folder(tmp_path / "training_set" / "training_set", classes=("cats", "dogs"), per_class=2)
    make_image_folder(tmp_path / "test_set" / "test_set", classes=("cats", "dogs"), per_class=1)
    with pytest.raises(ImgclfError, match=r"test_set/ has \['test_set'\], which training_set/ lacks.*"
                                          r"holds one folder of its own name.*move the class folders of "
                                          r"(training|test)_set/(training|test)_set/ up one level"):
        scan_folder(tmp_path)


def test_a_named_pipe_in_a_class_folder_is_listed_as_skipped_not_passed_over(tmp_path):
    """A pipe or socket inside a folder vanished without a word, where given by name it is named; the README says
    every file not used is listed."""
    import socket

    from imgclf.inputs import expand_inputs

    make_image_folder(tmp_path, classes=("cat", "dog"), per_class=3)
    os.mkfifo(tmp_path / "cat" / "fifo.png")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "dog" / "sock"))
        scan = scan_folder(tmp_path)
    assert len(scan.files["all"]) == 6
    assert sorted((Path(s["path"]).name, s["reason"]) for s in scan.skipped) == [
        ("fifo.png", "not a regular file (a named pipe)"), ("sock", "not a regular file (a socket)")]
    # predict on the folder: the pipe named as an image is a row that says why, as given by name
    assert str(tmp_path / "cat" / "fifo.png") in expand_inputs([tmp_path / "cat"])
