"""`imgclf export --quantize int8`: the convolutions, and only they, run in int8; the card says how the graph
agrees with fp32 on validation images; the onnx backend serves it; bad requests are one clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from imgclf.cli import app
from imgclf.errors import ImgclfError
from imgclf.export import CARD_METADATA_KEY, export_run, load_onnx
from imgclf.inference import Classifier
from imgclf.io import read_json, write_json
from imgclf.quantize import CALIBRATION_IMAGES, calibration_split


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory) -> Path:
    return Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("int8") / "run",
                                ignore=shutil.ignore_patterns("export")))


@pytest.fixture(scope="module")
def int8_path(run) -> Path:
    return export_run(run, "onnx", quantize="int8")


def _test_pixels(run: Path, clf: Classifier) -> np.ndarray:
    dataset = read_json(run / "dataset.json")
    return np.stack([clf.decode(str(Path(dataset["root"]) / f)) for f in dataset["splits"]["test"]["files"]])


def test_every_convolution_and_nothing_else_runs_in_int8(run, int8_path, tmp_path):
    import onnx

    graph = onnx.load(str(int8_path)).graph
    fed_by_dequantize = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and all(set(c.input[:2]) <= fed_by_dequantize for c in convs)  # input and weights both int8
    # only convolution weights are int8, and no dense layer or trust-head product reads an int8 tensor: their
    # weights, and the head's distances and threshold fitted on fp32 features, stay fp32
    weights = {i.name for i in graph.initializer}
    int8_weights = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights}
    assert int8_weights and {n.op_type for n in graph.node if int8_weights & set(n.input)} == {"Conv"}
    assert not [n for n in graph.node if n.op_type in ("Gemm", "MatMul") and fed_by_dequantize & set(n.input)]
    plain = onnx.load(str(export_run(run, "onnx", out=tmp_path))).graph
    assert not [n for n in plain.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]


def test_the_card_says_int8_and_how_it_agrees_with_fp32(run, int8_path):
    import onnx

    embedded = json.loads({p.key: p.value for p in onnx.load(str(int8_path)).metadata_props}[CARD_METADATA_KEY])
    beside = read_json(int8_path.with_name("model.onnx.json"))
    assert embedded["export"] == beside["export"]
    check = beside["export"]["quantization_check"]
    assert beside["export"]["quantization"] == "int8"
    val = len(read_json(run / "dataset.json")["splits"]["val"]["files"])
    # the tiny run's validation split is too small to keep calibration and check apart: both read all of it
    assert check["calibration_images"] == check["checked_images"] == val and check["overlap"] is True
    assert check["top1_agreement"] >= 0.9 and 0 <= check["max_probability_change"] < 0.5


def test_the_onnx_backend_serves_the_int8_graph_with_the_answers_of_fp32(run, int8_path):
    torch_clf = Classifier.load(run, precision="32")
    pixels = _test_pixels(run, torch_clf)
    expected = torch_clf.infer_pixels(pixels)
    onnx_clf = load_onnx(run)
    assert onnx_clf.precision == "int8"
    got = onnx_clf.infer_pixels(pixels)
    assert got.probabilities.shape == expected.probabilities.shape
    assert (got.probabilities.argmax(1) == expected.probabilities.argmax(1)).mean() >= 0.9
    assert np.abs(got.probabilities - expected.probabilities).max() > 0  # quantized: not the fp32 graph
    with pytest.raises(ImgclfError, match="precision must be auto with an int8 export.*Received: precision='32'"):
        load_onnx(run, precision="32")


def test_calibration_and_check_images_are_apart_once_there_are_enough():
    calibration, checked, overlap = calibration_split(1_000)
    assert (calibration, checked, overlap) == (slice(0, CALIBRATION_IMAGES), slice(CALIBRATION_IMAGES, 1_000), False)
    assert calibration_split(40) == (slice(0, 20), slice(20, 40), False)
    assert calibration_split(12) == (slice(0, 12), slice(0, 12), True)


def test_low_agreement_is_a_warning(run, tmp_path, monkeypatch, capsys):
    import imgclf.quantize

    export_run(run, "onnx", out=tmp_path, quantize="int8")
    assert "int8 graph gives" not in capsys.readouterr().err
    monkeypatch.setattr(imgclf.quantize, "AGREEMENT_WARN", 1.01)  # no graph agrees above 100 %
    export_run(run, "onnx", out=tmp_path, quantize="int8")
    assert "the int8 graph gives the fp32 graph's top-1 class on 100.0% of" in capsys.readouterr().err


def test_bad_quantize_requests_are_one_clear_error(run, tmp_path):
    with pytest.raises(ImgclfError, match=r"quantize must be one of .*Received: quantize='int4'"):
        export_run(run, "onnx", out=tmp_path, quantize="int4")
    with pytest.raises(ImgclfError, match=r"quantize must be none with --format pt2.*--format onnx"):
        export_run(run, "pt2", out=tmp_path, quantize="int8")
    moved = Path(shutil.copytree(run, tmp_path / "moved", ignore=shutil.ignore_patterns("export")))
    dataset = read_json(moved / "dataset.json")
    write_json(moved / "dataset.json", {**dataset, "root": str(tmp_path / "gone")})
    with pytest.raises(ImgclfError, match=r"validation images are on disk.*none of its \d+ validation images could "
                                          r"be read.*export without --quantize"):
        export_run(moved, "onnx", quantize="int8")
    assert not (moved / "export" / "model.onnx").exists()


def test_cli_export_int8_prints_the_agreement(run, tmp_path):
    result = CliRunner().invoke(app, ["export", str(run), "--quantize", "int8", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "int8 against fp32 on" in result.output and "top-1 agreement" in result.output
    assert (tmp_path / "model.onnx").exists()


def test_the_int8_page_says_so_and_its_example_answers_as_imgclf_does(run, int8_path, image_folder, monkeypatch):
    from export_pages import run_page_example

    page = int8_path.with_name("model.onnx.md")
    text = page.read_text()
    assert "convolutions compute in int8" in text and "graph computes in float32" not in text
    check = read_json(int8_path.with_name("model.onnx.json"))["export"]["quantization_check"]
    assert f"the same top-1 class for {check['top1_agreement']:.2%}" in text
    assert 'disabled_optimizers=["QDQPropagationTransformer"]' in text
    paths = sorted(str(p) for p in image_folder.glob("*/*.png"))[::5]
    theirs = run_page_example(page, paths, monkeypatch)
    ours = load_onnx(run).predict(paths)
    assert [t[0] for t in theirs] == [p.label for p in ours]
    assert np.allclose([t[2] for t in theirs], [p.probability for p in ours], atol=1e-6)
