"""`inspect_folder`: counts, sizes and colour modes as the files store them, broken files, imbalance."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_image_folder
from imgclf.inspect import inspect_folder


def test_inspect_reports_upright_sizes_modes_and_imbalance(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        (tmp_path / "cat").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 10, 3), dtype=np.uint8)).save(tmp_path / "cat" / f"{i}.png")
    (tmp_path / "dog").mkdir()
    Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(tmp_path / "dog" / "gray.png")
    Image.fromarray(rng.integers(0, 255, (640, 480, 3), dtype=np.uint8)).save(tmp_path / "dog" / "big.jpg")
    (tmp_path / "dog" / "broken.png").write_bytes(b"not an image")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide, 30 high, shown (and decoded) turned: 30 wide, 40 high
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "dog" / "turned.jpg",
                                                                           exif=exif)

    summary = inspect_folder(tmp_path)
    assert summary["classes"] == ["cat", "dog"]
    assert summary["counts"]["all"] == {"cat": 3, "dog": 3}
    assert summary["sizes"] == {"10x8": 3, "12x12": 1, "480x640": 1, "30x40": 1}
    assert summary["modes"] == {"RGB": 5, "L": 1}
    assert [s["path"].endswith("broken.png") for s in summary["skipped"]] == [True]
    assert summary["imbalance"]["rho"] == pytest.approx(1.0)


def test_inspect_merges_several_folders_as_training_does(tmp_path):
    import json

    from typer.testing import CliRunner

    from conftest import make_image_folder
    from imgclf.cli import app
    from imgclf.data.merge import scan_folders

    first = make_image_folder(tmp_path / "one", classes=("cat", "dog"), per_class=3, size=12)
    second = make_image_folder(tmp_path / "two", classes=("dog", "fox"), per_class=2, size=12)
    result = CliRunner().invoke(app, ["inspect", str(first), str(second), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    # the classes and counts training reads from the same two folders (S5 trains from several directories)
    trained = scan_folders([str(first), str(second)])
    assert summary["classes"] == trained.classes == ["cat", "dog", "fox"]
    assert summary["counts"]["all"] == {"cat": 3, "dog": 5, "fox": 2} == \
        {c: sum(1 for _, k in trained.files["all"] if k == c) for c in trained.classes}
    assert summary["roots"] == [str(first.resolve()), str(second.resolve())] and summary["total"] == 10
    shown = CliRunner().invoke(app, ["inspect", str(first), str(second)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "2 folders merged" in " ".join(shown.output.split())
    # one folder as before; a folder given twice is refused as training refuses it
    assert inspect_folder(first)["roots"] == [str(first.resolve())]
    twice = CliRunner().invoke(app, ["inspect", str(first), str(first)])
    assert twice.exit_code == 2 and "data must be distinct folders" in " ".join(twice.output.split())
    mixed = CliRunner().invoke(app, ["inspect", str(first), str(tmp_path / "labels.csv")])
    assert mixed.exit_code == 2 and "an index file is inspected alone" in " ".join(mixed.output.split())


def _two_classes_of_two_images(root):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")


def test_a_class_without_one_readable_image_is_named_as_training_will_refuse_it(tmp_path):
    """Every file of a class broken: inspect listed the files and a count of 0, then train refused the class."""
    from typer.testing import CliRunner

    from imgclf.cli import app

    _two_classes_of_two_images(tmp_path)
    (tmp_path / "fox").mkdir()
    (tmp_path / "fox" / "a.jpg").write_bytes(b"")
    (tmp_path / "fox" / "b.jpg").write_bytes(b"\\xff\\xd8 truncated")
    assert inspect_folder(tmp_path)["unreadable_classes"] == ["fox"]
    result = CliRunner().invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 0 and "class 'fox' has no readable image: training refuses it" in result.stdout


def _split_of_broken_images(root, layout):
    """train/ (or the index's train rows) readable, `layout`'s val or test images all broken or absent."""
    rng = np.random.default_rng(0)
    rows = ["path,labels,split"]
    for split in ("train", "val", "test"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                path = root / split / cls / f"{i}.png"
                if split == layout.split("-")[0]:
                    if layout.endswith("broken"):
                        path.write_bytes(b"not an image")
                    else:
                        continue
                else:
                    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
                rows.append(f"{path.relative_to(root)},{cls},{split}")
    (root / "index.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("layout, index, said", [
    ("val-broken", False, "not one image in val/ can be read: training refuses the data"),
    ("test-broken", False, "not one image in test/ can be read: training refuses the data"),
    ("val-empty", False, "val/ holds no image in its class folders: training refuses the data"),
    ("val-broken", True, "not one image in the index's val rows can be read: training refuses the data"),
    ("test-broken", True, "not one image in the index's test rows can be read: training refuses the data"),
])
def test_a_split_without_one_readable_image_is_named_as_training_will_refuse_it(tmp_path, layout, index, said):
    """inspect showed the split's column of zeros (or, for an index, no column at all) and listed the broken
    files, then train refused the data. What inspect says here, train does."""
    from typer.testing import CliRunner

    from imgclf.cli import app

    _split_of_broken_images(tmp_path / "d", layout)
    data = str(tmp_path / "d" / "index.csv") if index else str(tmp_path / "d")
    result = CliRunner().invoke(app, ["inspect", data], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and said in " ".join(result.stdout.split()), result.stdout
    assert "the class is missing from" not in result.stdout  # no class of an empty split is scored
    trained = CliRunner().invoke(app, ["train", data, "--model", "simple_cnn", "--img-size", "8", "--epochs", "1",
                                       "--no-progress", "--out", str(tmp_path / "r")])
    assert trained.exit_code == 2 and "error: data must be" in trained.output, trained.output
    readable = CliRunner().invoke(app, ["inspect", str(tmp_path / "d" / "train")])
    assert "can be read: training refuses" not in readable.stdout and "holds no image in its" not in readable.stdout


def test_images_linked_into_several_class_folders_are_said_to_be_a_label_set_tree(tmp_path, capsys):
    """A multi-label tree (one file hard-linked into each of its labels' folders) read as 763 readable images where
    training with --task multilabel used 499, without a word about the links."""
    import os

    from rich.console import Console

    from imgclf.inspect import render_inspection

    for name in ("circle", "square"):
        (tmp_path / name).mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "circle" / f"{i}.png")
    for i in range(2):  # two of them carry both labels
        os.link(tmp_path / "circle" / f"{i}.png", tmp_path / "square" / f"{i}.png")
    Image.new("RGB", (8, 8), (0, 200, 0)).save(tmp_path / "square" / "only.png")
    summary = inspect_folder(tmp_path)
    assert summary["in_several_classes"] == 2 and summary["total"] == 7
    console = Console(record=True, width=200)
    render_inspection(summary, console)
    said = " ".join(console.export_text().split())
    assert "2 image(s) sit in several class folders" in said and "--task multilabel" in said


def test_many_skipped_files_are_listed_ten_by_name_and_the_rest_counted_by_reason(tmp_path):
    """Annotations kept beside the images (300 .xml) printed a line each, past the screen."""
    import json

    from typer.testing import CliRunner

    from imgclf.cli import app

    make_image_folder(tmp_path, classes=("a", "b"), per_class=2)
    for i in range(25):
        (tmp_path / "a" / f"box_{i:02d}.xml").write_text("<annotation/>")
    (tmp_path / "b" / "empty.png").write_bytes(b"")
    shown = CliRunner().invoke(app, ["inspect", str(tmp_path)], env={"COLUMNS": "250"}).output
    assert "26 files cannot be used" in shown
    assert sum(1 for line in shown.splitlines() if "box_" in line) == 10
    assert "... and 16 more (--json lists them all):" in shown
    assert "15 × not an image file extension" in shown and "1 × empty file (0 bytes)" in shown
    listed = json.loads(CliRunner().invoke(app, ["inspect", str(tmp_path), "--json"]).output)["skipped"]
    assert len(listed) == 26


def test_training_lists_skipped_files_as_inspect_does(tmp_path):
    """train printed "... and 290 more" of 300 annotation files, inspect counted them by reason: one listing."""
    from typer.testing import CliRunner

    from imgclf.cli import app

    make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=4)
    for i in range(12):
        (tmp_path / "d" / "a" / f"box_{i:02d}.xml").write_text("<annotation/>")
    result = CliRunner().invoke(app, ["train", str(tmp_path / "d"), "--model", "simple_cnn", "--img-size", "16",
                                      "--epochs", "1", "--out", str(tmp_path / "run"), "--no-report"],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "... and 2 more (dataset.json lists them all):" in result.output
    assert "2 × not an image file extension" in result.output


def test_an_empty_class_has_no_imbalance_ratio_and_the_json_stays_json(tmp_path):
    """An empty class folder made rho infinite: the text read 'rho = inf' and --json wrote `Infinity`, which is not
    JSON (json.loads of other languages, jq, refuse it)."""
    import json

    from typer.testing import CliRunner

    from imgclf.cli import app

    _two_classes_of_two_images(tmp_path)
    (tmp_path / "fox").mkdir()

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    shown = json.loads(CliRunner().invoke(app, ["inspect", str(tmp_path), "--json"]).output, parse_constant=refuse)
    assert shown["imbalance"]["rho"] is None and shown["imbalance"]["imbalanced"] is True
    text = CliRunner().invoke(app, ["inspect", str(tmp_path)]).stdout
    assert "rho = undefined (a class holds no image)" in text and "inf" not in text


def test_a_phone_photo_pillow_cannot_open_is_named_for_what_it_is(tmp_path):
    """An iPhone's .HEIC read "not an image file extension" in a folder and "not a recognised image format" when
    named: both read as a broken photo, not as a format to convert."""
    from imgclf.data.decode import DecodeError, open_image
    from imgclf.inputs import expand_inputs

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / cls / "a.png")
    (tmp_path / "cat" / "IMG_0001.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    (tmp_path / "cat" / "notes.txt").write_text("x")
    reasons = {Path(s["path"]).name: s["reason"] for s in inspect_folder(tmp_path)["skipped"]}
    expected = "HEIC photos are not read (Pillow cannot open them); convert them to JPEG or PNG first"
    assert reasons == {"IMG_0001.HEIC": expected, "notes.txt": "not an image file extension"}
    with pytest.raises(DecodeError, match=re.escape(expected)):
        open_image(str(tmp_path / "cat" / "IMG_0001.HEIC"), 8, "rgb")
    # renamed .jpg, it is still a HEIC photo: known by its bytes ("not a recognised image format" before)
    (tmp_path / "renamed.jpg").write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0")
    with pytest.raises(DecodeError, match=re.escape(expected)):
        open_image(str(tmp_path / "renamed.jpg"), 8, "rgb")
    others: list[str] = []
    assert expand_inputs([str(tmp_path / "cat")], others=others) == [str(tmp_path / "cat" / "a.png")]
    assert sorted(Path(o).name for o in others) == ["IMG_0001.HEIC", "notes.txt"]  # named as left out


def test_a_balanced_subset_names_the_minority_classes_its_step_would_shrink(tmp_path, capsys):
    """`imgclf subset --rho 1` records mu 0.5 and five minority classes (those a study keeps as minority), where
    inspect read the balanced counts as mu 0, minority none: the two disagreed without a word. At rho 3 they agree
    and nothing more is said."""
    from rich.console import Console

    from imgclf.data.subset import build_subset
    from imgclf.inspect import render_inspection

    pool = make_image_folder(tmp_path / "pool", classes=("a", "b", "c", "d"), per_class=12, size=4)
    build_subset(pool, tmp_path / "rho1", per_class=6, rho=1)
    build_subset(pool, tmp_path / "rho3", per_class=6, rho=3)
    render_inspection(inspect_folder(tmp_path / "rho1"), Console(width=200))
    said = " ".join(capsys.readouterr().out.split())
    assert "mu = 0.0 (minority classes none)" in said
    assert "subset.json: drawn with rho 1.0, mu 0.5, minority classes a, b (the classes the step makes the smaller" \
        in said, said
    render_inspection(inspect_folder(tmp_path / "rho3"), Console(width=200))
    assert "subset.json" not in capsys.readouterr().out


@pytest.mark.parametrize("layout", ["flat", "splits"])
def test_images_in_a_subfolder_of_their_class_folder_are_said_to_count_as_that_class(tmp_path, layout):
    """A folder of sorted-out images left inside a class folder trained as that class without a word."""
    from rich.console import Console

    from imgclf.inspect import render_inspection

    base = tmp_path / "train" if layout == "splits" else tmp_path
    for name in ("cat", "dog"):
        (base / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(base / name / f"{i}.png")
    (base / "cat" / "rejected").mkdir()
    Image.new("RGB", (8, 8), (0, 200, 0)).save(base / "cat" / "rejected" / "blurry.png")
    summary = inspect_folder(tmp_path)
    assert summary["in_subfolders"]["count"] == 1 and summary["counts"][list(summary["counts"])[0]]["cat"] == 4
    console = Console(record=True, width=300)
    render_inspection(summary, console)
    said = " ".join(console.export_text().split())
    assert "1 image(s) sit in subfolders of their class folder (e.g. " in said and "blurry.png" in said
    assert "trains, as that class" in said
    (base / "cat" / "rejected" / "blurry.png").unlink()
    console = Console(record=True, width=300)
    render_inspection(inspect_folder(tmp_path), console)
    assert "subfolders" not in console.export_text()


def test_the_imbalance_line_says_whose_images_it_counts(tmp_path):
    """A flat folder's rho is over all its images, of which a run draws val and test first: inspect said 15.0
    as "the training split's", where the run's training split had 24."""
    from typer.testing import CliRunner

    from conftest import make_image_folder
    from imgclf.cli import app

    flat = make_image_folder(tmp_path / "flat", classes=("a", "b"), per_class=4, size=8)
    said = " ".join(CliRunner().invoke(app, ["inspect", str(flat)], env={"COLUMNS": "200"}).output.split())
    assert "imbalance over all images (a run's training split, in its dataset.json, may differ): rho = 1.0" in said
    split = tmp_path / "split"
    for name in ("train", "test"):
        make_image_folder(split / name, classes=("a", "b"), per_class=3, size=8)
    said = " ".join(CliRunner().invoke(app, ["inspect", str(split)], env={"COLUMNS": "200"}).output.split())
    assert "imbalance: rho = 1.0" in said, said


def test_inspect_plots_name_the_classes_no_font_draws(tmp_path, caplog):
    """The report said so, inspect --plots drew the boxes without a word (matplotlib's own warnings silenced)."""
    from typer.testing import CliRunner

    from conftest import make_image_folder
    from imgclf.cli import app

    data = make_image_folder(tmp_path / "d", classes=("\U00013000 man", "plain"), per_class=2, size=8)
    result = CliRunner().invoke(app, ["inspect", str(data), "--plots", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    said = [r.getMessage() for r in caplog.records if "no installed font draws" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith("then draw them again (imgclf inspect DATA --plots DIR)"), said
    # a multi-label index's labels too
    import numpy as np
    from PIL import Image

    (tmp_path / "ml").mkdir()
    for n in range(4):
        Image.fromarray(np.full((8, 8, 3), 40 * n, np.uint8)).save(tmp_path / "ml" / f"{n}.png")
    index = tmp_path / "ml" / "index.csv"
    index.write_text("path,labels\n0.png,\U00013000 man\n1.png,plain\n2.png,\U00013000 man;plain\n3.png,plain\n")
    caplog.clear()
    result = CliRunner().invoke(app, ["inspect", str(index), "--plots", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    said = [r.getMessage() for r in caplog.records if "no installed font draws" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith("(imgclf inspect INDEX --plots DIR)"), said
