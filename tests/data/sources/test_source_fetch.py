import shutil

import numpy as np
import pytest
from PIL import Image
from source_fakes import cifar_files, fashion_files, fer_csv, write_tar
from typer.testing import CliRunner

from imgclf.cli import app
from imgclf.data.sources import FASHION_CLASSES, fetch
from imgclf.errors import ImgclfError


def test_fashion_mnist_from_a_local_idx_folder(tmp_path):
    expected = fashion_files(tmp_path / "idx")
    out = fetch("fashion-mnist", tmp_path / "out", source=tmp_path / "idx")
    for split, (images, labels) in expected.items():
        assert sorted(p.name for p in (out / split).iterdir()) == sorted(FASHION_CLASSES)
        i = 3
        np.testing.assert_array_equal(np.asarray(Image.open(out / split / FASHION_CLASSES[labels[i]] / f"{i:05d}.png")), images[i])


def test_options_that_do_not_apply_and_unknown_names(tmp_path):
    with pytest.raises(ImgclfError, match="source must be left out: it does not apply to digits, which takes no "
                                          "options. Received: source='"):
        fetch("digits", tmp_path, source=tmp_path)
    with pytest.raises(ImgclfError, match="md5 must be left out: it does not apply to cifar10"):
        fetch("cifar10", tmp_path, md5="0" * 32)
    with pytest.raises(ImgclfError, match=r"name must be one of \{cifar10, digits, fashion-mnist, fer2013\}.*Did you mean: cifar10"):
        fetch("cifar-10", tmp_path)


def test_cli_cifar10_and_fer2013(tmp_path):
    runner = CliRunner()
    archive = write_tar(tmp_path / "cifar-10-binary.tar.gz", cifar_files(per_batch=1)[0])
    result = runner.invoke(app, ["data", "fetch", "cifar10", "--out", str(tmp_path / "c"), "--source", str(archive)])
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'c'}" in result.output
    assert sum(1 for _ in (tmp_path / "c").rglob("*.png")) == 6
    (tmp_path / "fer2013.csv").write_text(fer_csv()[0])
    result = runner.invoke(app, ["data", "fetch", "fer2013", "--out", str(tmp_path / "f"), "--source", str(tmp_path / "fer2013.csv")])
    assert result.exit_code == 0, result.output
    assert "skipped 3 of 9 rows" in result.output
    result = runner.invoke(app, ["data", "fetch", "fer2013", "--out", str(tmp_path / "g")])
    assert result.exit_code == 2 and "error: source for fer2013 must be given" in result.output


def test_a_fetch_completes_its_own_folder_and_refuses_one_of_other_images(tmp_path):
    out = fetch("digits", tmp_path / "digits")
    (out / "3" / "00003.png").unlink()  # an interrupted fetch: run again, it completes the folder
    (out / ".DS_Store").write_bytes(b"")
    assert (fetch("digits", out) / "3" / "00003.png").exists()
    (out / "cats").mkdir()  # a folder of other images: fetched into, both made one data set of 11 classes
    with pytest.raises(ImgclfError, match=r"out must be a new or empty folder, or one holding only an earlier "
                                          r"fetch of digits.* \(it holds cats\)"):
        fetch("digits", out)


def test_a_fetch_into_another_fetchs_folder_is_refused(tmp_path, monkeypatch):
    """fashion-mnist's and cifar10's train/ and test/ passed the check of top-level names: a cifar10 fetch into a
    fashion-mnist folder made one data set of 20 classes; so did two sources of one data set, and a fetch into the
    user's own train/ and test/."""
    fashion_files(tmp_path / "idx")
    out = fetch("fashion-mnist", tmp_path / "out", source=tmp_path / "idx")
    archive = write_tar(tmp_path / "cifar-10-binary.tar.gz", cifar_files(per_batch=1)[0])
    with pytest.raises(ImgclfError, match=r"out must be a new or empty folder, or one holding an earlier fetch of "
                                          r"cifar10 .* \(it holds a fetch of fashion-mnist \(source=.*idx\)\)"):
        fetch("cifar10", out, source=archive)
    fashion_files(tmp_path / "other")
    with pytest.raises(ImgclfError, match=r"it holds a fetch of fashion-mnist \(source=.*idx\)"):
        fetch("fashion-mnist", out, source=tmp_path / "other")
    assert not any(p.name.startswith("airplane") for p in (out / "train").iterdir())
    # the same fetch again completes it, whichever way its source is spelt
    (out / "train" / FASHION_CLASSES[0]).rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    assert (fetch("fashion-mnist", out, source="idx") / "train" / FASHION_CLASSES[0]).is_dir()
    own = tmp_path / "own"
    (own / "train" / "cats").mkdir(parents=True)  # the user's own split folders: no record of a fetch
    with pytest.raises(ImgclfError, match=r"it holds images no fetch recorded"):
        fetch("fashion-mnist", own, source=tmp_path / "idx")


def test_a_fetch_by_an_earlier_imgclf_is_completed_and_an_unfinished_one_is_warned_of(tmp_path, caplog):
    """A folder an imgclf without fetch records wrote was refused, even to the same fetch; a fetch killed
    part-way left a tree that inspect and train took whole, without a word."""
    import json
    import logging

    from imgclf.data.folder import scan_folder

    out = fetch("digits", tmp_path / "digits")
    assert json.loads((out / ".imgclf-fetch.json").read_text())["complete"] is True
    (out / ".imgclf-fetch.json").unlink()
    shutil.rmtree(out / "7")
    assert (fetch("digits", out) / "7").is_dir()  # completed, as the same fetch completes its own
    record = json.loads((out / ".imgclf-fetch.json").read_text())
    (out / ".imgclf-fetch.json").write_text(json.dumps({**record, "complete": False}))  # as a killed fetch leaves it
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        scan_folder(out)
    assert f"{out} holds an unfinished fetch of digits: some of its images are missing" in caplog.text


def test_two_fetches_into_one_folder_at_once_both_finish(tmp_path):
    """Both wrote each image through the same temp name: one renamed the other's away and crashed."""
    from concurrent.futures import ThreadPoolExecutor

    from imgclf.data.sources.tree import write_tree

    images = np.random.default_rng(0).integers(0, 256, (300, 8, 8), dtype=np.uint8)
    labels = np.arange(300) % 3
    with ThreadPoolExecutor(2) as pool:
        done = [pool.submit(write_tree, tmp_path, None, images, labels, ["a", "b", "c"]) for _ in range(2)]
        assert [f.result() for f in done] == [300, 300]
    assert sum(1 for _ in tmp_path.rglob("*.png")) == 300 and not list(tmp_path.rglob("*.tmp"))


def test_the_users_own_class_folders_do_not_pass_for_an_earlier_fetch(tmp_path):
    """A folder holding only 0/ ... 9/ passed for a digits fetch that kept no record: the digits were written among
    the user's own 28x28 scans, and the record then called the mix a complete fetch."""
    own = tmp_path / "scans"
    for digit in range(10):
        (own / str(digit)).mkdir(parents=True)
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(own / str(digit) / "mine_0.png")
    with pytest.raises(ImgclfError, match=r"it holds images no fetch recorded"):
        fetch("digits", own)
    assert sorted(p.name for p in (own / "0").iterdir()) == ["mine_0.png"]


def test_a_fetch_that_fails_before_its_first_image_leaves_no_folder_behind(tmp_path):
    """A bad --md5, a missing source: each failed fetch left its --out holding an "unfinished" record, which
    inspect then called an unfinished fetch."""
    (tmp_path / "fer2013.csv").write_text(fer_csv()[0])
    with pytest.raises(ImgclfError, match="md5 must be 32 hexadecimal digits"):
        fetch("fer2013", tmp_path / "f", source=tmp_path / "fer2013.csv", md5="zz")
    assert not (tmp_path / "f").exists()
    with pytest.raises(ImgclfError, match="md5 must be 32 hexadecimal digits"):  # the parents it made go too
        fetch("fer2013", tmp_path / "new" / "deeper" / "f", source=tmp_path / "fer2013.csv", md5="zz")
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()  # the user's own empty folder is kept, as empty as it was
    with pytest.raises(ImgclfError, match=r"source for fashion-mnist must be .* \(no such folder\)"):
        fetch("fashion-mnist", tmp_path / "empty", source=tmp_path / "nope")
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_whole_fetch_run_again_and_failing_stays_whole(tmp_path):
    """The rerun wrote complete: false before it read its source: with the source moved it failed, and inspect
    then warned of missing images in a folder that held them all."""
    import json

    fashion_files(tmp_path / "idx")
    out = fetch("fashion-mnist", tmp_path / "out", source=tmp_path / "idx")
    (tmp_path / "idx").rename(tmp_path / "moved")
    with pytest.raises(ImgclfError, match="no such folder"):
        fetch("fashion-mnist", out, source=tmp_path / "idx")
    assert json.loads((out / ".imgclf-fetch.json").read_text())["complete"] is True


def test_an_unfinished_fetch_is_completed_by_the_command_its_warning_gives(tmp_path, caplog):
    """The warning said `imgclf data fetch NAME --out OUT`, without the fetch's --source, and that command was then
    refused as another fetch."""
    import json
    import logging
    import shlex

    from imgclf.data.folder import scan_folder

    fashion_files(tmp_path / "my idx")
    out = fetch("fashion-mnist", tmp_path / "out", source=tmp_path / "my idx", per_class=1, seed=3)
    record = json.loads((out / ".imgclf-fetch.json").read_text())
    assert record["options"] == {"per_class": "1", "seed": "3", "source": str(tmp_path / "my idx")}
    (out / ".imgclf-fetch.json").write_text(json.dumps({**record, "complete": False}))  # as a killed fetch leaves it
    shutil.rmtree(out / "test")
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        scan_folder(out)
    command = caplog.text.split("Run ", 1)[1].split(" again to complete it")[0]
    assert command.startswith("imgclf data fetch fashion-mnist --out ")
    result = CliRunner().invoke(app, shlex.split(command)[1:])
    assert result.exit_code == 0, result.output
    assert sum(1 for _ in (out / "test").rglob("*.png")) == 10  # one per class, as the fetch drew them


def test_per_class_and_seed_are_checked_and_decide_the_folder(tmp_path):
    """per_class=0 wrote all 70,000 images, -1 all but one per class; a second draw with another seed went into
    the first one's folder, as the record held neither."""
    fashion_files(tmp_path / "idx")
    for bad in (0, -1, "3", 2.7, True):
        with pytest.raises(ImgclfError, match=r"per_class must be a whole number >= 1. Received: per_class="):
            fetch("fashion-mnist", tmp_path / "bad", source=tmp_path / "idx", per_class=bad)
    with pytest.raises(ImgclfError, match="seed must be a whole number >= 0"):
        fetch("fashion-mnist", tmp_path / "bad", source=tmp_path / "idx", per_class=1, seed=-1)
    assert not (tmp_path / "bad").exists()
    out = fetch("fashion-mnist", tmp_path / "out", source=tmp_path / "idx", per_class=1)
    assert sum(1 for _ in out.rglob("*.png")) == 20
    assert fetch("fashion-mnist", out, source=tmp_path / "idx", per_class=1, seed=0) == out  # the default, given
    with pytest.raises(ImgclfError, match="seed must be left out without per_class"):
        fetch("fashion-mnist", tmp_path / "all", source=tmp_path / "idx", seed=3)
    with pytest.raises(ImgclfError, match=r"it holds a fetch of fashion-mnist \(per_class=1, seed=0, source="):
        fetch("fashion-mnist", out, source=tmp_path / "idx", per_class=1, seed=1)
    fashion_files(tmp_path / "idx2", n_train=30, n_test=20)  # 3 and 2 images a class
    result = CliRunner().invoke(app, ["data", "fetch", "fashion-mnist", "--out", str(tmp_path / "cli"), "--source",
                                      str(tmp_path / "idx2"), "--per-class", "2"])
    assert result.exit_code == 0, result.output
    assert sum(1 for _ in (tmp_path / "cli" / "train").rglob("*.png")) == 20
    # more than a split holds: the test split wrote fewer than asked, and the record said per_class 3
    over = CliRunner().invoke(app, ["data", "fetch", "fashion-mnist", "--out", str(tmp_path / "over"), "--source",
                                    str(tmp_path / "idx2"), "--per-class", "3"])
    assert over.exit_code == 2 and not (tmp_path / "over").exists()
    assert ("per_class (--per-class) for fashion-mnist must be at most 2, the images of a class in the smallest "
            "split (train 3, test 2 a class). Received: per_class=3") in " ".join(over.output.split())


def test_a_fashion_mnist_source_without_its_test_files_is_refused_by_name(tmp_path):
    """Only the train images were looked for: the missing test files crashed (FileNotFoundError)."""
    fashion_files(tmp_path / "idx")
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "idx" / name).unlink()
    with pytest.raises(ImgclfError, match=r"\(it lacks t10k-images-idx3-ubyte\[.gz\], t10k-labels-idx1-ubyte\[.gz\]\)"):
        fetch("fashion-mnist", tmp_path / "out", source=tmp_path / "idx")
    with pytest.raises(ImgclfError, match=r"\(a file: pass the folder holding the four IDX files\)"):
        fetch("fashion-mnist", tmp_path / "out", source=tmp_path / "idx" / "train-images-idx3-ubyte.gz")


def test_a_class_with_no_row_gets_no_empty_folder(tmp_path, caplog):
    """fer2013 without a row of an emotion (six-class variants are common) wrote empty class folders, which
    training then refused."""
    import logging

    (tmp_path / "fer2013.csv").write_text(fer_csv()[0])  # no row of fear (2) or sad (4)
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        out = fetch("fer2013", tmp_path / "f", source=tmp_path / "fer2013.csv")
    assert "fer2013: no row of fear, sad, so no folder for them" in caplog.text
    assert not [p for p in out.rglob("*") if p.name in ("fear", "sad")]
    # a class with images in some split keeps its folder in the others: the class missing there, not refused
    assert (out / "val" / "angry").is_dir() and not any((out / "val" / "angry").iterdir())


def test_sigterm_during_a_fetch_leaves_no_temp_file_and_says_how_to_go_on(tmp_path, monkeypatch):
    """The default SIGTERM action (timeout, kill, a batch scheduler) ended the fetch mid-write: the image being
    written stayed behind as a hidden temp file that no rerun removed."""
    import os
    import signal

    from imgclf.data.sources import tree

    fashion_files(tmp_path / "idx")
    replace, calls = os.replace, []

    def replace_then_terminated(src, dst):  # (os.replace itself: the fetch record's writes come here too)
        if str(dst).endswith(".png"):
            calls.append(dst)
        if len(calls) == 3 and str(dst).endswith(".png"):
            os.kill(os.getpid(), signal.SIGTERM)  # arrives as the third image is being renamed into place
        replace(src, dst)

    def unhandled(signum, frame):  # without the fetch's own handler: fail here, not end the test process
        raise RuntimeError("SIGTERM reached the default handler")

    monkeypatch.setattr(tree.os, "replace", replace_then_terminated)
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        result = CliRunner().invoke(app, ["data", "fetch", "fashion-mnist", "--out", str(tmp_path / "out"),
                                          "--source", str(tmp_path / "idx")])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.exit_code == 143, result.output
    assert "fetch interrupted (SIGTERM); the images written are kept" in result.output
    assert list((tmp_path / "out").rglob("*.tmp")) == []
    assert sum(1 for _ in (tmp_path / "out").rglob("*.png")) == 2
