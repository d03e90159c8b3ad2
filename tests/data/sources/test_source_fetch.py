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
