"""Several data folders used as one (S5 trains from several directories concatenated): classes merged by folder
name, every image used once, and dataset.json records every folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import make_image_folder
from imgclf.cli import app
from imgclf.data.dataset import prepare_data
from imgclf.data.merge import scan_folders
from imgclf.errors import ImgclfError
from imgclf.records import DatasetRecord


def _images(*roots: Path) -> set[str]:
    return {str(p.resolve()) for root in roots for p in root.rglob("*.png")}


@pytest.fixture()
def two_roots(tmp_path):
    a = make_image_folder(tmp_path / "part1", classes=("cat", "dog"), per_class=10)
    b = make_image_folder(tmp_path / "part2", classes=("dog", "fox"), per_class=10, seed=1)
    return a, b


def test_two_flat_folders_merge_classes_and_use_every_image_once(two_roots):
    a, b = two_roots
    data = prepare_data([str(a), str(b)], 8, "rgb", val_split=0.2, test_split=0.2, seed=0)
    assert data.classes == ["cat", "dog", "fox"]
    assert data.counts()["train"]["dog"] > data.counts()["train"]["cat"]  # dog comes from both folders
    used = [str(Path(p).resolve()) for split in data.splits for p in data.paths(split)]
    assert len(used) == len(set(used)) == 40 and set(used) == _images(a, b)
    record = DatasetRecord.model_validate(data.describe())
    assert record.roots == [str(a.resolve()), str(b.resolve())]
    listed = [str(Path(p).resolve()) for split in record.splits for p in record.split_paths(split)[0]]
    assert sorted(listed) == sorted(used)  # dataset.json's relative paths lead back to every file


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_file_reached_through_both_folders_is_used_once(tmp_path, link):
    """A folder of links beside the folder it links to (an `imgclf subset` beside its source, say): every image was
    counted twice, weighed double in training, and the automatic split put one file in both val and test."""
    import os

    source = make_image_folder(tmp_path / "source", classes=("cat", "dog"), per_class=10)
    links = tmp_path / "links"
    for image in sorted(source.rglob("*.png"))[::2]:
        (links / image.parent.name).mkdir(parents=True, exist_ok=True)
        (os.symlink if link == "symlink" else os.link)(image, links / image.parent.name / image.name)
    own = make_image_folder(tmp_path / "own", classes=("dog",), per_class=3, seed=5)  # other files: kept
    (links / "dog" / "own.png").write_bytes(next(own.rglob("*.png")).read_bytes())
    scan = scan_folders([source, links])
    assert len(scan.files["all"]) == 21
    assert sorted(Path(s["path"]).parent.parent.name for s in scan.skipped) == ["links"] * 10
    assert all("the same file as one listed already (a symbolic or hard link to it)" in s["reason"]
               for s in scan.skipped)
    data = prepare_data([str(source), str(links)], 8, "rgb", val_split=0.2, test_split=0.2, seed=0)
    used = [os.path.realpath(p) for split in data.splits for p in data.paths(split)]
    assert len(used) == len(set(used)) == 21


def test_a_file_linked_twice_into_one_class_folder_is_used_once_there_too(tmp_path):
    """The rule is one for one folder and several: merged, such a link was dropped (and said to come from another
    folder); alone, it counted twice."""
    import os

    source = make_image_folder(tmp_path / "d", classes=("cat", "dog"), per_class=5)
    photo = sorted((source / "cat").iterdir())[0]
    os.link(photo, source / "cat" / "again.png")
    (source / "cat" / "inner").mkdir()
    (source / "cat" / "inner" / "linked.png").symlink_to(photo)
    (source / "dog" / "as_dog.png").symlink_to(photo)  # another class: a multi-label tree, kept
    for scan in (scan_folders(source), scan_folders([source, make_image_folder(tmp_path / "e", classes=("fox",),
                                                                               per_class=2, seed=3)])):
        cats = [p for p, c in scan.files["all"] if c == "cat"]
        assert len(cats) == len({os.stat(p).st_ino for p in cats}) == 5  # each file once, whichever name kept
        assert len(scan.skipped) == 2 and all("the same file as one listed already" in s["reason"]
                                              for s in scan.skipped)
        assert sum(1 for p, c in scan.files["all"] if c == "dog" and p.endswith("as_dog.png")) == 1


def test_the_file_itself_is_kept_and_its_symbolic_link_named(tmp_path):
    """a_copy.png -> cat_000.png sorts first: the file itself was listed as the link, and a user who removed what
    was named removed the original."""
    source = make_image_folder(tmp_path / "d", classes=("cat", "dog"), per_class=3)
    (source / "cat" / "a_copy.png").symlink_to(source / "cat" / "cat_000.png")
    scan = scan_folders(source)
    assert [Path(s["path"]).name for s in scan.skipped] == ["a_copy.png"]
    assert any(p.endswith("cat_000.png") for p, _ in scan.files["all"])


def test_evaluate_on_a_folder_scores_a_linked_file_once(tiny_run, image_folder, tmp_path):
    import os
    import shutil

    import imgclf

    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))  # evaluate writes its scores into the run
    folder = Path(shutil.copytree(image_folder, tmp_path / "eval"))
    before = imgclf.evaluate(run, data=str(folder), progress=False).count
    first = sorted((folder / "cat").glob("*.png"))[0]
    os.link(first, folder / "cat" / "again.png")
    assert imgclf.evaluate(run, data=str(folder), progress=False).count == before


def test_a_run_trained_on_a_link_counted_twice_says_so_when_its_resume_is_refused(tmp_path, monkeypatch):
    """Trained before links were used once, its dataset.json lists the second link, which the listing now skips:
    the refusal said the file 'cannot be read now', and to put the folder back as it was."""
    import os

    import imgclf
    from imgclf.data import merge

    source = make_image_folder(tmp_path / "d", classes=("cat", "dog"), per_class=8)
    os.link(sorted((source / "cat").iterdir())[0], source / "cat" / "again.png")
    settings = {"data": str(source), "model": "simple_cnn", "img_size": 8, "epochs": 1, "batch_size": 8,
                "model_args": {"width": 4}, "progress": False, "out": str(tmp_path / "run")}
    with monkeypatch.context() as before:
        before.setattr(merge, "each_file_once", lambda files: [])
        imgclf.fit(settings, report=False)
    with pytest.raises(ImgclfError, match=r"1 of the images dataset.json lists is a link to a file listed already, "
                                          r"which imgclf now uses once") as caught:
        imgclf.fit(resume=str(tmp_path / "run"), epochs=2, report=False)
    assert "cannot be read now" not in str(caught.value)


def test_split_folders_merge_by_split(tmp_path):
    a = make_image_folder(tmp_path / "a", classes=("cat", "dog"), layout="splits", per_split={"train": 6, "test": 3})
    b = make_image_folder(tmp_path / "b", classes=("cat", "dog"), layout="splits", per_split={"train": 4}, seed=2)
    scan = scan_folders([a, b])
    assert scan.layout == "splits" and scan.classes == ["cat", "dog"]
    assert len(scan.files["train"]) == 20 and len(scan.files["test"]) == 6  # test/ from the first folder only
    assert {Path(p).parts[-4] for p, _ in scan.files["train"]} == {"a", "b"}


@pytest.mark.parametrize("make, words", [
    (lambda t: [make_image_folder(t / "a", classes=("x", "y"), per_class=2)] * 2, ["the same folder as"]),
    (lambda t: [make_image_folder(t / "a", classes=("x", "y"), per_class=2), t / "a" / "x"], ["is inside"]),
    (lambda t: [make_image_folder(t / "a", classes=("x", "y"), per_class=2),
                make_image_folder(t / "b", classes=("x", "y"), layout="splits", per_split={"train": 2})],
     ["folders of one layout", "class-per-folder", "split into train/"]),
    (lambda t: [make_image_folder(t / "a", classes=("x",), per_class=2),
                make_image_folder(t / "b", classes=("x",), per_class=2, seed=1)], ["at least 2 class folders"]),
])
def test_folders_that_cannot_be_merged_are_refused(tmp_path, make, words):
    with pytest.raises(ImgclfError) as info:
        scan_folders([str(p) for p in make(tmp_path)])
    assert str(info.value).startswith("data must be")
    for word in words:
        assert word in str(info.value), str(info.value)


def test_one_class_per_folder_is_enough_when_merged(tmp_path):
    cats = make_image_folder(tmp_path / "cats", classes=("cat",), per_class=3)
    dogs = make_image_folder(tmp_path / "dogs", classes=("dog",), per_class=3, seed=1)
    assert scan_folders([cats, dogs]).classes == ["cat", "dog"]


def test_train_on_two_folders_from_the_command_line(two_roots, tmp_path):
    a, b = two_roots
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(a), str(b), "--out", str(out), "--epochs", "1", "--img-size", "16",
                                      "--model-args", "width=4", "--batch-size", "8", "--no-progress"])
    assert result.exit_code == 0, result.output
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["roots"] == [str(a.resolve()), str(b.resolve())]
    assert dataset["classes"] == ["cat", "dog", "fox"]
    root = Path(dataset["root"])
    used = [str((root / f).resolve()) for split in dataset["splits"].values() for f in split["files"]]
    assert len(used) == len(set(used)) and set(used) == _images(a, b)
    assert json.loads((out / "model.json").read_text())["classes"] == ["cat", "dog", "fox"]
    import yaml

    assert yaml.safe_load((out / "config.yaml").read_text())["data"] == [str(a.resolve()), str(b.resolve())]
    # the report named their common parent, a folder of other things, as the data folder
    page = " ".join((out / "report.html").read_text().split())
    assert f"<dt>folders</dt><dd><code>{a.resolve()}</code>, <code>{b.resolve()}</code> (merged;" in page


def test_the_python_api_takes_a_list_of_folders(two_roots, monkeypatch):
    from imgclf.pipeline import resolve_config

    a, b = two_roots
    monkeypatch.chdir(a.parent)
    cfg = resolve_config(data=[Path("part1"), "part2"])
    assert cfg.data == [str(a.resolve()), str(b.resolve())]
    assert resolve_config(data=["part1"]).data == str(a.resolve())  # one folder stays a plain string


def test_merged_folders_need_every_class_in_train_only_as_one_folder_does(tmp_path):
    """A val/ without a class of train/ is scored on the others in one folder; merged, an empty val/b/ was
    accepted and a missing one refused."""
    for name in ("m1", "m2"):
        make_image_folder(tmp_path / name, layout="splits", classes=("a", "b"), per_split={"train": 3})
        make_image_folder(tmp_path / name / "val", classes=("a",), per_class=1)
    scan = scan_folders([tmp_path / "m1", tmp_path / "m2"])
    assert scan.classes == ["a", "b"] and {c for _, c in scan.files["val"]} == {"a"}
