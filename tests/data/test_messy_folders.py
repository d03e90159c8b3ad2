"""Folder layouts that read without error yet are not what the user meant (a review built each and trained on it):
each is now refused, listed with the skipped files, or warned of, by the scan that train and inspect share."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from conftest import make_image_folder
from imgclf.data.folder import scan_folder
from imgclf.errors import ImgclfError


@pytest.fixture
def said(caplog):
    def lines() -> str:
        return " ".join(r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.WARNING, logger="imgclf"):
        yield lines


def test_classes_one_level_down_are_warned_of(tmp_path, said):
    """batch1/{cat,dog} and batch2/{cat,dog} trained as the classes batch1 and batch2 (test accuracy at chance)."""
    for batch in ("batch1", "batch2"):
        make_image_folder(tmp_path / "deep" / batch, classes=("cat", "dog"), per_class=3)
    scan = scan_folder(tmp_path / "deep")
    assert scan.classes == ["batch1", "batch2"]
    assert "each hold the same sub-folders (cat/, dog/) and no image of their own" in said()
    assert f"imgclf train {tmp_path / 'deep' / 'batch1'} {tmp_path / 'deep' / 'batch2'} merges them" in said()
    make_image_folder(tmp_path / "plain", classes=("cat", "dog"), per_class=3)
    scan_folder(tmp_path / "plain")
    assert said().count("same sub-folders") == 1


def test_split_folders_inside_each_class_folder_are_named_as_such(tmp_path, said):
    """cat/{train,test} and dog/{train,test}: the warning said to give each class folder as data, which fails
    ("train/ holds 0 class folders"), and did not say that the test images were being trained on."""
    for cls in ("cat", "dog"):
        make_image_folder(tmp_path / "inv" / cls, classes=("Training", "test"), per_class=3, seed=len(cls))
    assert scan_folder(tmp_path / "inv").classes == ["cat", "dog"]
    words = said()
    assert "each hold the split folders Training/, test/: imgclf reads SPLIT/CLASS folders, not CLASS/SPLIT" in words
    assert "the images in test/ are drawn into training like any other" in words and "merges them" not in words
    assert "move cat/Training/ to Training/cat/, cat/test/ to test/cat/" in words


def test_class_names_alike_but_for_case_or_spaces_are_warned_of(tmp_path, said):
    make_image_folder(tmp_path / "d", classes=("Cat", "cat", "dog"), per_class=2)
    assert scan_folder(tmp_path / "d").classes == ["Cat", "cat", "dog"]
    assert "differ only in case or spaces are different classes ('Cat' and 'cat')" in said()
    # two folders merged, each alone with nothing to warn of
    from imgclf.data.merge import scan_folders

    make_image_folder(tmp_path / "a", classes=("Dog", "fox"), per_class=2)
    make_image_folder(tmp_path / "b", classes=("dog", "fox"), per_class=2)
    assert scan_folders([str(tmp_path / "a"), str(tmp_path / "b")]).classes == ["Dog", "dog", "fox"]
    assert f"class folders of {tmp_path / 'a'} + {tmp_path / 'b'} that differ only in case or spaces are " \
        "different classes ('Dog' and 'dog')" in said()


def test_a_broken_symlink_to_a_class_folder_is_listed_not_lost_without_a_word(tmp_path):
    """A class on an unmounted drive disappeared from the label set, nothing skipped."""
    data = make_image_folder(tmp_path / "d", classes=("cat", "dog"), per_class=2)
    os.symlink(tmp_path / "gone" / "bird", data / "bird")
    scan = scan_folder(data)
    assert scan.classes == ["cat", "dog"]
    (item,) = scan.skipped
    assert item["path"] == str(data / "bird") + os.sep
    assert item["reason"].startswith(f"broken symlink (its target, {tmp_path / 'gone' / 'bird'}, is not there)")


def test_two_folders_naming_one_split_are_refused(tmp_path):
    """train/ beside Training/: Training/ was read and the user's own train/ listed as "not a split"."""
    for split in ("train", "Training", "test"):
        make_image_folder(tmp_path / "d" / split, classes=("cat", "dog"), per_class=2)
    with pytest.raises(ImgclfError, match=r"Training/ and train/ both name the train split"):
        scan_folder(tmp_path / "d")


def test_runs_kept_among_the_class_folders_are_not_classes(tmp_path, tiny_run):
    """A runs/ folder inside the data folder was trained as a class of report PNGs."""
    data = make_image_folder(tmp_path / "d", classes=("cat", "dog"), per_class=2)
    shutil.copytree(tiny_run, data / "runs" / "first")
    scan = scan_folder(data)
    assert scan.classes == ["cat", "dog"]
    assert [(s["path"], s["reason"].split(":")[0]) for s in scan.skipped] == \
        [(str(data / "runs") + os.sep, "imgclf's output (a run, a folder of runs, a cross-validation or a search), "
                                       "not a class folder")]


def test_a_link_to_the_data_folder_is_a_loop_not_a_class(tmp_path):
    """all -> . made a class of every image; dog/loop -> .. read cat's images into dog."""
    data = make_image_folder(tmp_path / "d", classes=("cat", "dog"), per_class=2)
    os.symlink(".", data / "all")
    os.symlink("..", data / "dog" / "loop")
    scan = scan_folder(data)
    assert scan.classes == ["cat", "dog"]
    assert sorted(c for _, c in scan.files["all"]) == ["cat", "cat", "dog", "dog"]
    assert sorted(s["path"] for s in scan.skipped if s["reason"].startswith("symlink loop")) == \
        [str(data / "all") + os.sep, str(data / "dog" / "loop") + os.sep]


def test_one_folder_holding_the_classes_is_named_in_the_refusal(tmp_path):
    make_image_folder(tmp_path / "d" / "images", classes=("cat", "dog"), per_class=2)
    with pytest.raises(ImgclfError, match=r"images/ holds the class folders \(cat/, dog/\): give .*images as the "
                                          r"data folder"):
        scan_folder(tmp_path / "d")


def test_a_folder_holding_an_index_file_is_refused_with_the_index_named(tmp_path):
    """README lists index.csv among the data layouts; `train ix/` (ix/index.csv, ix/images/) was told only of
    class folders."""
    make_image_folder(tmp_path / "ix", classes=("images",), per_class=2)
    (tmp_path / "ix" / "index.csv").write_text("path,labels\nimages/images_000.png,a\n")
    with pytest.raises(ImgclfError, match=r"If index.csv in it is an index of label sets \(multi-label data\), give "
                                          r"that file as the data of a multi-label run's train, evaluate or inspect "
                                          rf"\(the others read class folders\): {tmp_path / 'ix' / 'index.csv'}"):
        scan_folder(tmp_path / "ix")
    # beside another table, the index is the one named (a results table sorts first and was offered as the data)
    (tmp_path / "ix" / "results.csv").write_text("a,b\n")
    with pytest.raises(ImgclfError, match=r"If index.csv \(or results.csv\) in it .*: "
                                          rf"{tmp_path / 'ix' / 'index.csv'}"):
        scan_folder(tmp_path / "ix")
    # the images beside the index, not in a folder of their own: the index still, not "move each image into a
    # folder named after its class"
    flat = tmp_path / "flat"
    flat.mkdir()
    for png in (tmp_path / "ix" / "images").glob("*.png"):
        png.rename(flat / png.name)
    (flat / "index.csv").write_text("path,labels\nimages_000.png,a\n")
    with pytest.raises(ImgclfError, match=r"If index.csv in it is an index of label sets .*give that file as the "
                                          rf"data of .*: {flat / 'index.csv'}\.$"):
        scan_folder(flat)


def test_a_class_of_broken_files_only_is_refused_with_what_was_skipped_and_a_way_on(tmp_path):
    """'10 file(s) skipped' counted folders as files, and only inspect advised --drop-classes."""
    from imgclf.data.dataset import prepare_data

    root = make_image_folder(tmp_path / "d", classes=("cat", "dog"), per_class=6)
    (root / "broken").mkdir()
    for i in range(3):
        (root / "broken" / f"{i}.png").write_bytes(b"not a png")
    (root / "broken" / "loop").symlink_to(root / "broken")  # a folder skipped: it leads back to its class
    with pytest.raises(ImgclfError, match=r"no usable training image for \['broken'\]; 3 files and 1 folder "
                                          r"skipped\)\. See .*, or leave the class out: --drop-classes broken"):
        prepare_data(root, 16, "rgb", 0.2, 0.2, 0, cache_dir=str(tmp_path / "cache"))


def test_an_out_that_is_the_data_folder_is_said_to_be_it(tmp_path):
    """--out data with data data/ said "inside the data folder": it is that folder."""
    from imgclf.io import outside_data

    data = make_image_folder(tmp_path / "d", classes=("cat", "dog"), per_class=1)
    with pytest.raises(ImgclfError, match=r"out must be a folder outside the data folder.*\(the data folder itself"):
        outside_data("out", data, str(data))
    with pytest.raises(ImgclfError, match=r"\(inside the data folder"):
        outside_data("out", data / "runs", str(data))


def test_plots_and_a_cache_inside_the_data_folder_are_refused_before_anything_is_written(tmp_path):
    """inspect --plots d/figs wrote its two figures where the next training read them as a class 'figs', and
    train --cache-dir d/cc left a folder the next scan refused as a class with no image."""
    from typer.testing import CliRunner

    from imgclf.cli import app

    data = make_image_folder(tmp_path / "d", classes=("cat", "dog"), per_class=2)
    result = CliRunner().invoke(app, ["inspect", str(data), "--plots", str(data / "figs")])
    assert result.exit_code == 2 and "error: plots must be a folder outside the data folder" in \
        " ".join(result.output.split()), result.output
    result = CliRunner().invoke(app, ["train", str(data), "--cache-dir", str(data / "cc"), "--epochs", "1",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "cache_dir (--cache-dir) must be a folder outside the data folder" in \
        " ".join(result.output.split()), result.output
    assert sorted(p.name for p in data.iterdir()) == ["cat", "dog"] and not (tmp_path / "run").exists()


def test_the_checks_hold_no_false_alarm_on_ordinary_layouts(tmp_path, monkeypatch, said):
    """A second review of the checks above: "." given from inside a folder read as a link to itself; an evaluation's
    val/ and test/ warned of as classes one level down; valid -> val refused as a second val folder; a broken link
    to a file listed as a class; a macOS (NFD) wrapper folder crashed; the split layout's wrapper hint dropped val/."""
    import unicodedata

    from imgclf.data.folder import walk_images

    data = make_image_folder(tmp_path / "d", classes=("cat", "dog"), per_class=2)
    monkeypatch.chdir(data / "cat")
    assert len(walk_images(Path("."), [])) == 2 and len(walk_images(Path("../dog"), [])) == 2
    assert scan_folder(Path("..")).classes == ["cat", "dog"]
    for split in ("val", "test"):
        make_image_folder(tmp_path / "vt" / split, classes=("cat", "dog"), per_class=2)
    assert scan_folder(tmp_path / "vt", without_train=True).classes == ["cat", "dog"]
    assert "same sub-folders" not in said()
    make_image_folder(tmp_path / "tv" / "train", classes=("cat", "dog"), per_class=2)
    shutil.copytree(tmp_path / "vt" / "val", tmp_path / "tv" / "val")
    os.symlink("val", tmp_path / "tv" / "valid")
    assert scan_folder(tmp_path / "tv").layout == "splits"
    os.symlink(tmp_path / "gone.png", data / "extra.png")
    assert not any(s["path"].endswith(os.sep) for s in scan_folder(data).skipped)
    nfd = unicodedata.normalize("NFD", "café")
    make_image_folder(tmp_path / "n" / nfd, classes=("cat", "dog"), per_class=1)
    with pytest.raises(ImgclfError, match=r"holds the class folders \(cat/, dog/\): give "):
        scan_folder(tmp_path / "n")
    for split in ("train", "val"):
        make_image_folder(tmp_path / "w" / split / "images", classes=("cat", "dog"), per_class=1)
    with pytest.raises(ImgclfError, match=r"images/ holds the class folders \(cat/, dog/\): move the class folders "
                                          r"of each split's images/ up one level"):
        scan_folder(tmp_path / "w")


def test_links_are_followed_as_the_system_follows_them(tmp_path, monkeypatch, said):
    """A third review: data given as L/../data, where L is a link, read dog's images into cat through a link back to
    the data folder (the folders above were taken lexically); a class folder linked into a sibling data set read its
    other classes through a link there; test/ read through Testing -> test was listed as a folder not read; and a
    pair alike within one of several merged folders was warned of twice."""
    data = make_image_folder(tmp_path / "deep" / "real" / "data", classes=("cat", "dog"), per_class=2)
    (tmp_path / "deep" / "real" / "sub").mkdir()
    os.symlink("..", data / "cat" / "everything")
    os.symlink(tmp_path / "deep" / "real" / "sub", tmp_path / "L")
    monkeypatch.chdir(tmp_path)
    scan = scan_folder(Path("L/../data"))
    assert sorted(c for _, c in scan.files["all"]) == ["cat", "cat", "dog", "dog"]
    other = make_image_folder(tmp_path / "other", classes=("cat", "fox"), per_class=2)
    os.symlink("..", other / "cat" / "up")
    sib = make_image_folder(tmp_path / "sib", classes=("dog",), per_class=2)
    os.symlink(other / "cat", sib / "cat")
    os.symlink(sib, other / "cat" / "back")
    assert sorted(c for _, c in scan_folder(sib).files["all"]) == ["cat", "cat", "dog", "dog"]
    for split in ("train", "test"):
        make_image_folder(tmp_path / "sp" / split, classes=("cat", "dog"), per_class=2)
    os.symlink("test", tmp_path / "sp" / "Testing")
    assert not scan_folder(tmp_path / "sp").skipped
    from imgclf.data.merge import scan_folders

    make_image_folder(tmp_path / "mA", classes=("Cat", "cat"), per_class=1)
    make_image_folder(tmp_path / "mB", classes=("dog",), per_class=1)
    scan_folders([str(tmp_path / "mA"), str(tmp_path / "mB")])
    assert said().count("('Cat' and 'cat')") == 1
