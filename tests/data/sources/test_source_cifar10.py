import logging

import numpy as np
import pytest
from PIL import Image
from source_fakes import CIFAR_META, cifar_files, write_tar

from imgclf.data.sources import CIFAR10_CLASSES, export_cifar10, fetch
from imgclf.errors import ImgclfError


def assert_tree(out, expected, classes):
    # a folder in each split for every class some image carries, and none for a class no image carries
    present = sorted({classes[y] for _, labels in expected.values() for y in labels})
    for split, (images, labels) in expected.items():
        assert sorted(p.name for p in (out / split).iterdir()) == present
        assert sum(1 for _ in (out / split).rglob("*.png")) == len(images)
        for i, (img, y) in enumerate(zip(images, labels)):
            png = Image.open(out / split / classes[y] / f"{i:05d}.png")
            assert png.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(png), img)  # R, G, B planes exactly


def test_binary_tar_gz_round_trips_every_pixel(tmp_path):
    files, expected = cifar_files(per_batch=3)
    archive = write_tar(tmp_path / "cifar-10-binary.tar.gz", {f"cifar-10-batches-bin/{k}": v for k, v in files.items()})
    out = fetch("cifar10", tmp_path / "out", source=archive)
    assert len(expected["train"][0]) == 15 and len(expected["test"][0]) == 3
    assert_tree(out, expected, CIFAR10_CLASSES)


def test_extracted_folder_and_names_from_meta(tmp_path):
    files, expected = cifar_files(per_batch=2)
    files["batches.meta.txt"] = CIFAR_META.replace(b"airplane", b"plane")
    folder = tmp_path / "src" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    out = export_cifar10(tmp_path / "out", source=tmp_path / "src")
    assert_tree(out, expected, ["plane"] + CIFAR10_CLASSES[1:])


def test_unsafe_names_in_meta_fall_back_to_the_published_ones(tmp_path, caplog):
    files, _ = cifar_files(per_batch=1)
    files["batches.meta.txt"] = CIFAR_META.replace(b"airplane", b"../../escape")
    archive = write_tar(tmp_path / "c.tar.gz", files)
    with caplog.at_level(logging.WARNING):
        out = export_cifar10(tmp_path / "out", source=archive)
    assert {p.name for p in (out / "train").iterdir()} <= set(CIFAR10_CLASSES)
    assert not (tmp_path / "escape").exists()
    assert "ten plain class names" in caplog.text


def test_python_pickle_version_is_refused_without_unpickling(tmp_path):
    archive = write_tar(tmp_path / "cifar-10-python.tar.gz",
                        {"cifar-10-batches-py/data_batch_1": b"\x80\x04 not to be unpickled", "cifar-10-batches-py/batches.meta": b"x"})
    with pytest.raises(ImgclfError, match="python version.*pickles.*never unpickles"):
        export_cifar10(tmp_path / "out", source=archive)


def test_truncated_batch_and_bad_labels(tmp_path, caplog):
    files, _ = cifar_files(per_batch=2)
    truncated = dict(files, **{"data_batch_3.bin": files["data_batch_3.bin"][:-5]})
    with pytest.raises(ImgclfError, match="t.tar.gz:data_batch_3.bin .* not a whole number of 3073-byte records"):
        export_cifar10(tmp_path / "a", source=write_tar(tmp_path / "t.tar.gz", truncated))
    bad = bytearray(files["test_batch.bin"])
    bad[0] = 200  # the first test record's label
    with caplog.at_level(logging.WARNING):
        out = export_cifar10(tmp_path / "b", source=write_tar(tmp_path / "b.tar.gz", dict(files, **{"test_batch.bin": bytes(bad)})))
    assert sum(1 for _ in (out / "test").rglob("*.png")) == 1
    assert f"skipped 1 of 2 records of {tmp_path / 'b.tar.gz'}:test_batch.bin" in caplog.text


def test_missing_members_and_missing_source(tmp_path):
    files, _ = cifar_files(per_batch=1)
    del files["data_batch_5.bin"]
    with pytest.raises(ImgclfError, match="lacks data_batch_5.bin"):
        export_cifar10(tmp_path / "out", source=write_tar(tmp_path / "c.tar.gz", files))
    with pytest.raises(ImgclfError, match="no such path"):
        export_cifar10(tmp_path / "out", source=tmp_path / "nowhere.tar.gz")
    (tmp_path / "junk.tar.gz").write_bytes(b"\x1f\x8b\x08 this is not a tar")
    with pytest.raises(ImgclfError, match="cannot be read"):
        export_cifar10(tmp_path / "out", source=tmp_path / "junk.tar.gz")
