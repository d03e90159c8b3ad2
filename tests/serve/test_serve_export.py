"""ONNX / torch.export export: outputs (probabilities, in-distribution score, unknown flag) match the PyTorch
Classifier on the run's test split and on planted noise."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from imgclf.cli import app
from imgclf.errors import ImgclfError
from imgclf.export import CARD_METADATA_KEY, export_run, load_onnx
from imgclf.inference import Classifier
from imgclf.io import read_json, write_json
from imgclf.ood import COMBINED, DETECTORS


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory) -> Path:
    """A private copy of the tiny run, so exports into RUN/export/ do not change the shared fixture."""
    return Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("export") / "run"))


@pytest.fixture(scope="module")
def onnx_path(run) -> Path:
    return export_run(run, "onnx")


def _test_split_pixels(run: Path, clf: Classifier) -> np.ndarray:
    dataset = read_json(run / "dataset.json")
    files = [Path(dataset["root"]) / f for f in dataset["splits"]["test"]["files"]]
    assert files, "the tiny run must have a test split"
    return np.stack([clf.decode(str(f)) for f in files])


def test_onnx_matches_pytorch_on_the_test_split(run, onnx_path):
    clf = Classifier.load(run, precision="32")
    pixels = _test_split_pixels(run, clf)
    expected = clf.predict_pixels(pixels)
    onnx_clf = load_onnx(run)
    # the whole split in one batch, then batch size 1: the batch dimension is dynamic
    for got in (onnx_clf.predict_pixels(pixels), onnx_clf.predict_pixels(pixels, batch_size=1)):
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-4
    assert np.abs(onnx_clf.predict_pixels(pixels, tta=True) - clf.predict_pixels(pixels, tta=True)).max() < 1e-4


def _refitted(run: Path, features: str, detector: str) -> dict:
    """The run's unknown block and statistics fitted again for `detector` on `features`, written into the run."""
    from imgclf.data.dataset import prepare_data
    from imgclf.pipeline.trust import fit_trust
    from imgclf.records import RunDir

    stored = RunDir(run)
    cfg = stored.read_config().model_copy(update={"unknown_detector": detector})
    data = prepare_data(cfg.data, cfg.img_size, cfg.color, cfg.val_split, cfg.test_split, cfg.seed)
    _, unknown = fit_trust(cfg, data, Classifier.load(run).model, stored.read_card(), run, features=features)
    assert unknown.features == features
    return unknown.model_dump(mode="json")


@pytest.mark.parametrize(("detector", "features"), [*((d, "map-mean-max") for d in DETECTORS),
                                                     ("mahalanobis-l2", "pre-logits")])
def test_onnx_score_and_unknown_equal_the_torch_path(run, tmp_path, detector, features):
    """The graph's `score` and `unknown` outputs against the torch Classifier, for every detector, on the test
    split plus uniform noise, with a threshold between them so that both answers occur. simple_cnn's head pools
    its map, so its run reads the map's mean and max; the pre-logits (any other head) from statistics refitted."""
    copy = Path(shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("export")))
    card = read_json(copy / "model.json")
    assert card["unknown"]["features"] == "map-mean-max"
    if features != card["unknown"]["features"] or detector == COMBINED:  # the combined one has statistics of its own
        card["unknown"] = _refitted(copy, features, detector)
        card.pop("file_sha256")  # statistics refitted by hand: a card without the digests, as before them
    card["calibration"] = {"method": "temperature", "temperature": 1.7}
    card["unknown"] = {**card["unknown"], "detector": detector, "threshold": None}
    write_json(copy / "model.json", card)
    clf = Classifier.load(copy, precision="32")
    noise = np.random.default_rng(1).integers(0, 256, (6, *_test_split_pixels(copy, clf).shape[1:]), dtype=np.uint8)
    pixels = np.concatenate([_test_split_pixels(copy, clf), noise])
    scores = clf.infer_pixels(pixels).scores
    card["unknown"]["threshold"] = float(np.median(scores))  # half the images unknown
    write_json(copy / "model.json", card)
    expected = Classifier.load(copy, precision="32").infer_pixels(pixels)
    assert 0 < expected.unknown.sum() < len(pixels)
    export_run(copy, "onnx")
    onnx_clf = load_onnx(copy)
    assert onnx_clf.outputs == ["probabilities", "score", "unknown"]
    for got in (onnx_clf.infer_pixels(pixels), onnx_clf.infer_pixels(pixels, batch_size=1)):
        assert np.abs(got.probabilities - expected.probabilities).max() < 1e-5
        assert np.allclose(got.scores, expected.scores, rtol=1e-4, atol=1e-3)
        assert (got.unknown == expected.unknown).all()
    files = [Path(read_json(copy / "dataset.json")["root"]) / f
             for f in read_json(copy / "dataset.json")["splits"]["test"]["files"]]
    assert ([p.label for p in onnx_clf.predict([str(f) for f in files])]
            == [p.label for p in Classifier.load(copy, precision="32").predict([str(f) for f in files])])


def test_onnx_file_carries_the_model_card(run, onnx_path):
    import onnx

    card = read_json(run / "model.json")
    proto = onnx.load(str(onnx_path))
    embedded = json.loads({p.key: p.value for p in proto.metadata_props}[CARD_METADATA_KEY])
    beside = read_json(onnx_path.with_name("model.onnx.json"))
    for c in (embedded, beside):
        assert c["classes"] == card["classes"] and c["mean"] == card["mean"] and c["img_size"] == card["img_size"]
        assert c["export"]["format"] == "onnx"
    (inp,) = proto.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [card["img_size"], card["img_size"], card["in_chans"]]


def test_onnx_predict_gives_the_same_labels_as_torch(run, onnx_path, image_folder):
    files = sorted(str(p) for p in image_folder.glob("*/*.png"))[::7]
    torch_preds = Classifier.load(run, precision="32").predict(files, top_k=2)
    onnx_preds = load_onnx(run).predict(files, top_k=2)
    assert [p.label for p in onnx_preds] == [p.label for p in torch_preds]
    # --precision 32 names what the graph runs at, so a script pinning it may switch backends
    assert [p.probability for p in load_onnx(run, precision="32").predict(files, top_k=2)] == \
        [p.probability for p in onnx_preds]
    assert np.allclose([p.probability for p in onnx_preds], [p.probability for p in torch_preds], atol=1e-4)


def test_pt2_format_is_a_torch_export_program(run, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's note on weights off the CPU reached the user's terminal
        path = export_run(run, "pt2", out=tmp_path)
    assert path.name == "model.pt2" and (tmp_path / "model.pt2.json").exists()
    assert export_run(run, "torchscript", out=tmp_path / "old") == tmp_path / "old" / "model.pt2"  # its first name
    clf = Classifier.load(run, precision="32")
    pixels = _test_split_pixels(run, clf)
    module = torch.export.load(str(path)).module()
    # called as a user would, outside no_grad: an inference program, whose outputs numpy() takes as they come
    outputs = module(torch.from_numpy(pixels))
    assert not any(t.requires_grad for t in outputs) and not any(p.requires_grad for p in module.parameters())
    probs, score, unknown = (t.numpy() for t in outputs)
    expected = clf.infer_pixels(pixels)
    assert np.abs(probs - expected.probabilities).max() < 1e-4
    assert np.allclose(score, expected.scores, rtol=1e-4, atol=1e-3) and (unknown == expected.unknown).all()
    # "N any number from 1", as its page says and the ONNX file takes: the program refused batches over 65,536
    program = torch.export.load(str(path))
    images = next(n for n in program.graph.nodes if n.name == program.graph_signature.user_inputs[0])
    bound = program.range_constraints[images.meta["val"].shape[0].node.expr]
    assert bound.lower == 1 and bound.upper > 2 ** 40, bound
    # and its embedded card, which the page names, holds the classes
    files = {"model.json": ""}
    torch.export.load(str(path), extra_files=files)
    assert json.loads(files["model.json"])["classes"] == clf.card.classes


def test_the_onnx_backend_refuses_float_pixels_as_the_torch_one_does(run, onnx_path):
    onnx_clf = load_onnx(run)
    pixels = _test_split_pixels(run, onnx_clf)
    with pytest.raises(ImgclfError, match=r"pixels must be uint8 images.*Classifier.predict takes floats"):
        onnx_clf.predict_pixels(pixels.astype(np.float32) / 255)


def test_bad_format_and_missing_export_are_clear_errors(run, tmp_path):
    with pytest.raises(ImgclfError, match=r"format must be one of \{onnx, pt2\}.*Received: format='tflite'"):
        export_run(run, "tflite")
    bare = Path(shutil.copytree(run, tmp_path / "bare", ignore=shutil.ignore_patterns("export")))
    with pytest.raises(ImgclfError, match="imgclf export"):
        load_onnx(bare)


def test_cli_export_and_predict_with_the_onnx_backend(run, onnx_path, image_folder, tmp_path):
    runner = CliRunner()
    # the fixture already made the ONNX file; the command is exercised with the faster .pt2 export
    result = runner.invoke(app, ["export", str(run), "--format", "pt2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model.pt2").exists() and (tmp_path / "model.pt2.json").exists()
    image = str(next(iter(sorted(image_folder.glob("fox/*.png")))))
    outputs = {}
    for backend in ("torch", "onnx"):
        result = runner.invoke(app, ["predict", str(run), image, "--format", "json", "--backend", backend])
        assert result.exit_code == 0, result.output
        outputs[backend] = json.loads(result.output)
    assert outputs["onnx"][0]["label"] == outputs["torch"][0]["label"]
    result = runner.invoke(app, ["export", str(run), "--format", "tflite"])
    assert result.exit_code == 2 and "format must be one of" in result.output


def test_the_server_can_answer_from_the_onnx_export(run, onnx_path, image_folder):
    from fastapi.testclient import TestClient

    from imgclf.serve import create_app

    files = sorted(image_folder.glob("dog/*.png"))[:3]
    expected = [p.label for p in Classifier.load(run, precision="32").predict([str(f) for f in files])]
    with TestClient(create_app(run, backend="onnx", threads=1)) as client:
        r = client.post("/predict", files=[("files", (f.name, f.read_bytes(), "image/png")) for f in files])
        assert r.status_code == 200, r.text
        assert [p["label"] for p in r.json()["predictions"]] == expected
        assert client.get("/health").json()["backend"] == "onnx"


def test_a_default_export_folder_that_cannot_be_written_says_how_to_write_elsewhere(run, tmp_path):
    """A read-only run folder was refused as "out must be a folder to write into", an option never given."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("export"))
    (copy / "export").write_text("in the way")
    with pytest.raises(ImgclfError, match=r"out must be a folder to write into.*out defaults to .*export: pass "
                                          r"--out \(Python: out=\) to write elsewhere"):
        export_run(copy, "pt2")
