"""The download path against a real HTTP server on 127.0.0.1 (no mocks): verify, then keep; or refuse and keep nothing."""

import socket

import numpy as np
import pytest
from PIL import Image
from source_fakes import cifar_files, fashion_files, fer_csv, http_root, md5, write_tar  # noqa: F401  (fixture)

import imgclf.data.sources.cifar10 as cifar10_module
from imgclf.data.sources import FASHION_MD5, export_cifar10, export_fashion_mnist, export_fer2013
from imgclf.data.sources.download import download
from imgclf.errors import ImgclfError


def files_in(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_cifar10_download_verified_then_written_then_reused_offline(tmp_path, http_root, monkeypatch):
    root, base = http_root
    files, expected = cifar_files(per_batch=2)
    archive = write_tar(root / "cifar-10-binary.tar.gz", files)
    monkeypatch.setattr(cifar10_module, "CIFAR10_MD5", md5(archive))  # the fake's own published checksum
    cache = tmp_path / "cache"
    out = export_cifar10(tmp_path / "out", url=base + "cifar-10-binary.tar.gz", cache_dir=cache)
    assert files_in(cache) == ["cifar10/cifar-10-binary.tar.gz"]
    assert sum(1 for _ in (out / "train").rglob("*.png")) == 10
    archive.unlink()  # the server no longer has it: the verified cached copy is used
    out2 = export_cifar10(tmp_path / "out2", url=base + "cifar-10-binary.tar.gz", cache_dir=cache)
    img, label = expected["test"][0][1], expected["test"][1][1]
    np.testing.assert_array_equal(np.asarray(Image.open(out2 / "test" / cifar10_module.CIFAR10_CLASSES[label] / "00001.png")), img)


def test_checksum_mismatch_is_an_error_and_leaves_no_file(tmp_path, http_root):
    root, base = http_root
    write_tar(root / "cifar-10-binary.tar.gz", cifar_files(per_batch=1)[0])  # not the published archive
    cache = tmp_path / "cache"
    with pytest.raises(ImgclfError, match="does not match its published MD5: expected c32a1d4ab5d03f1284b67883e8d87530"):
        export_cifar10(tmp_path / "out", url=base + "cifar-10-binary.tar.gz", cache_dir=cache)
    assert files_in(cache) == []
    assert not (tmp_path / "out").exists()


def test_fashion_mnist_download_from_a_mirror(tmp_path, http_root, monkeypatch):
    root, base = http_root
    expected = fashion_files(root / "mirror")
    for name in FASHION_MD5:
        monkeypatch.setitem(FASHION_MD5, name, md5(root / "mirror" / name))
    out = export_fashion_mnist(tmp_path / "out", url=base + "mirror", cache_dir=tmp_path / "cache")
    assert len(files_in(tmp_path / "cache" / "fashion-mnist")) == 4
    for split, (images, labels) in expected.items():
        assert sum(1 for _ in (out / split).rglob("*.png")) == len(images)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "test" / "trouser" / "00001.png")), expected["test"][0][1])


def test_fer2013_download_with_user_md5(tmp_path, http_root):
    root, base = http_root
    (root / "fer2013.csv").write_text(fer_csv()[0])
    with pytest.raises(ImgclfError, match="does not match"):
        export_fer2013(tmp_path / "out", url=base + "fer2013.csv", md5="f" * 32, cache_dir=tmp_path / "cache")
    assert files_in(tmp_path / "cache") == []
    out = export_fer2013(tmp_path / "out", url=base + "fer2013.csv", md5=md5(root / "fer2013.csv"), cache_dir=tmp_path / "cache")
    assert sum(1 for _ in out.rglob("*.png")) == 6


def test_offline_404_and_bad_url_errors(tmp_path, http_root):
    _, base = http_root
    with pytest.raises(ImgclfError, match="HTTP 404"):
        download(base + "missing.tar.gz", tmp_path / "cache", None)
    with socket.socket() as s:  # a port nothing listens on: what being offline looks like to urllib
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ImgclfError, match=rf"url must be an address that can be reached. "
                                          rf"Received: url='http://127.0.0.1:{port}/x.gz' "
                                         r"\(could not download: .*pass --source"):
        download(f"http://127.0.0.1:{port}/x.gz", tmp_path / "cache", None)
    # Fashion-MNIST's --source is the folder of its four files, not a copy of the one that failed
    with pytest.raises(ImgclfError, match=r"pass --source with the folder holding the four IDX files"):
        export_fashion_mnist(tmp_path / "out", url=f"http://127.0.0.1:{port}/", cache_dir=tmp_path / "cache")
    with pytest.raises(ImgclfError, match="url must be an http:// or https:// address"):
        download("file:///etc/passwd", tmp_path / "cache", None)
    assert files_in(tmp_path / "cache") == []
