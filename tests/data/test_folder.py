import numpy as np
import pytest

from conftest import make_image_folder
from imgclf.data.dataset import prepare_data, stratified_holdout
from imgclf.data.folder import scan_folder
from imgclf.errors import ImgclfError


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


def test_split_layout_with_train_and_test_splits_validation_off_train(tmp_path):
    make_image_folder(tmp_path, layout="splits", per_split={"train": 20, "test": 5})
    data = prepare_data(tmp_path, 16, "rgb", val_split=0.25, seed=0)
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


def test_stratified_holdout_keeps_a_training_item_per_class():
    labels = np.array([0] * 10 + [1] * 2 + [2])
    mask = stratified_holdout(labels, 0.5, np.random.default_rng(0))
    for c in (0, 1, 2):
        assert (~mask & (labels == c)).any()
    assert mask[labels == 0].sum() == 5


@pytest.mark.parametrize("make, message", [
    (lambda p: (p / "a").mkdir() or make_image_folder(p, classes=("b", "c"), per_class=2), "holds no image"),
    (lambda p: make_image_folder(p, classes=("only",), per_class=3), "at least 2 class folders"),
    (lambda p: (make_image_folder(p, layout="splits", classes=("a", "b"), per_split={"train": 2}),
                make_image_folder(p, layout="splits", classes=("a", "c"), per_split={"test": 2})),
     r"split folders have the classes of train/.*test/ is missing \['b'\], has extra \['c'\]"),
    (lambda p: make_image_folder(p, layout="splits", classes=("a", "b"), per_split={"test": 2}), "contains train/ .*no train/"),
])
def test_bad_folders_give_clear_errors(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(ImgclfError, match=message):
        scan_folder(tmp_path)


def test_missing_path_names_the_argument(tmp_path):
    with pytest.raises(ImgclfError, match=r"data must be an existing folder.*Received: data="):
        scan_folder(tmp_path / "nope")


def test_color_auto_detects_grayscale(tmp_path):
    make_image_folder(tmp_path, mode="L", per_class=3)
    data = prepare_data(tmp_path, 8, "auto", val_split=0.34, test_split=0.0)
    assert data.color == "grayscale" and data.decoded.pixels.shape[-1] == 1
