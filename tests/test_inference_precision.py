"""Prediction runs the network at `precision` (default auto: bf16 autocast where the CPU has native bf16), the head
always on float32; a run's own evaluation follows its training's --precision 32; bad values are refused."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import imgclf
from imgclf import hardware
from imgclf.cli import app
from imgclf.errors import ImgclfError
from imgclf.inference import Classifier
from imgclf.prediction_precision import inference_precision

from conftest import make_image_folder


@pytest.fixture()
def native_bf16(monkeypatch):
    """Pretend this CPU has (True) or lacks (False) native bf16, whatever it has."""
    def pretend(has: bool) -> None:
        monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: has)
    return pretend


def _test_pixels(run) -> np.ndarray:
    clf = Classifier.load(run, precision="32")
    dataset = json.loads((run / "dataset.json").read_text())
    files = [f"{dataset['root']}/{f}" for f in dataset["splits"]["test"]["files"]]
    noise = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    return np.concatenate([np.stack([clf.decode(f) for f in files]), noise])


@pytest.mark.parametrize(("native", "asked", "resolved"), [
    (True, "auto", "bf16-mixed"), (False, "auto", "32"), (True, "32", "32"), (False, "bf16-mixed", "bf16-mixed")])
def test_auto_is_bf16_only_on_a_cpu_with_native_bf16(tiny_run, native_bf16, native, asked, resolved, tmp_path):
    import shutil

    from imgclf.records import RunDir

    # a run whose fits ran at auto (on a machine with native bf16): auto follows the machine it predicts on. The
    # session's tiny run was fitted wherever the suite runs, in fp32 on an AVX2-only machine, where auto then
    # keeps fp32 (test_a_run_trained_in_fp32_is_fitted_and_evaluated_in_fp32) and this case failed
    run = RunDir(shutil.copytree(tiny_run, tmp_path / "run"))
    run.write_card(run.read_card().model_copy(update={"fitted_precision": "bf16-mixed"}))
    native_bf16(native)
    assert inference_precision(asked, torch.device("cpu")) == resolved
    assert imgclf.load(run.path, precision=asked).precision == resolved


@pytest.mark.parametrize(("precision", "dtype"), [("bf16-mixed", torch.bfloat16), ("32", torch.float32)])
def test_the_network_runs_at_the_precision_and_the_head_reads_float32(tiny_run, precision, dtype):
    clf = Classifier.load(tiny_run, precision=precision)
    convolutions = [m for m in clf.model.modules() if isinstance(m, torch.nn.Conv2d)]
    seen: list[torch.dtype] = []
    handles = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype)) for m in convolutions]
    try:
        out = clf.infer_pixels(_test_pixels(tiny_run))
        logits, features = clf.embed_pixels(_test_pixels(tiny_run), features=True)
    finally:
        for h in handles:
            h.remove()
    assert seen and set(seen) == {dtype}
    assert out.probabilities.dtype == np.float32 and np.allclose(out.probabilities.sum(1), 1.0, atol=1e-5)
    assert logits.dtype == features.dtype == np.float32


def test_bf16_answers_are_close_to_fp32(tiny_run):
    """Same run, same images (its test split and uniform noise): bf16 moves probabilities and scores by bf16's
    rounding, not more. Fashion-MNIST's figures: benchmarks/infer_precision.py."""
    pixels = _test_pixels(tiny_run)
    fp32 = Classifier.load(tiny_run, precision="32").infer_pixels(pixels)
    bf16 = Classifier.load(tiny_run, precision="bf16-mixed").infer_pixels(pixels)
    assert np.abs(bf16.probabilities - fp32.probabilities).max() < 0.05
    assert not np.array_equal(bf16.probabilities, fp32.probabilities), "bf16 ran: its rounding shows"
    assert (bf16.probabilities.argmax(1) == fp32.probabilities.argmax(1)).mean() >= 0.9
    assert np.corrcoef(bf16.scores, fp32.scores)[0, 1] > 0.99


def _val_scores(run, precision: str) -> np.ndarray:
    clf = Classifier.load(run, precision=precision)
    dataset = json.loads((run / "dataset.json").read_text())
    files = [f"{dataset['root']}/{f}" for f in dataset["splits"]["val"]["files"]]
    return np.sort(clf.infer_pixels(np.stack([clf.decode(f) for f in files])).scores)


def test_a_run_trained_in_fp32_is_fitted_and_evaluated_in_fp32(tmp_path, native_bf16):
    """`--precision 32` keeps the whole run in fp32, even on a CPU where auto would be bf16: its temperature and
    unknown threshold are fitted on fp32 scores, the card says so, and predict / serve / evaluate at their default
    (auto) keep to it; auto follows the machine. metrics.json records what evaluation ran at."""
    from imgclf.ood import load_stats

    native_bf16(True)
    data = make_image_folder(tmp_path / "data", per_class=8, size=16)
    recorded, loaded, fitted = {}, {}, {}
    for precision in ("32", "auto"):
        run = imgclf.fit({"data": str(data), "model": "simple_cnn", "img_size": 16, "epochs": 1, "batch_size": 8,
                          "out": str(tmp_path / precision), "progress": False, "precision": precision,
                          "model_args": {"width": 4}, "val_split": 0.25, "test_split": 0.25})
        recorded[precision] = json.loads((run.path / "metrics.json").read_text())["precision"]
        report = (run.path / "report.html").read_text()
        assert f'evaluation precision</span> {recorded[precision]}<' in report
        card = run.path.joinpath("model.json")
        fitted[precision] = json.loads(card.read_text())["fitted_precision"]
        # the validation scores the threshold was set on are those of the network at the recorded precision
        stored = load_stats(run.path / json.loads(card.read_text())["unknown"]["statistics"])["val_scores"]
        other = "bf16-mixed" if fitted[precision] == "32" else "32"
        assert np.allclose(stored, _val_scores(run.path, fitted[precision]), rtol=1e-5, atol=1e-5)
        assert not np.allclose(stored, _val_scores(run.path, other), rtol=1e-5, atol=1e-5)
        loaded[precision] = (imgclf.load(run.path).precision, imgclf.evaluate(run.path, split="val").precision)
    assert recorded == fitted == {"32": "32", "auto": "bf16-mixed"}
    assert loaded == {"32": ("32", "32"), "auto": ("bf16-mixed", "bf16-mixed")}
    # a card written before fitted_precision was fitted in fp32, whatever its training ran at
    card = json.loads((tmp_path / "auto" / "model.json").read_text())
    del card["fitted_precision"]
    (tmp_path / "auto" / "model.json").write_text(json.dumps(card))
    assert imgclf.load(tmp_path / "auto").precision == "32"


def test_evaluate_records_the_precision_asked(tiny_run, tmp_path):
    import shutil

    run = shutil.copytree(tiny_run, tmp_path / "run")  # the shared run keeps no evaluation of ours
    out = imgclf.evaluate(run, split="val", precision="32")
    assert out.precision == "32"
    written = json.loads((run / "evaluations" / "val" / "metrics.json").read_text())
    assert written["precision"] == "32"


def test_bad_precision_is_refused_naming_the_value(tiny_run):
    allowed = r"precision must be one of \{16-mixed, 32, auto, bf16-mixed\}\. Received: precision='fp64'"
    with pytest.raises(ImgclfError, match=allowed):
        imgclf.load(tiny_run, precision="fp64")
    result = CliRunner().invoke(app, ["predict", str(tiny_run), str(tiny_run / "model.json"), "--precision", "fp8"])
    assert result.exit_code == 2 and "precision" in result.output and "fp8" in result.output
    result = CliRunner().invoke(app, ["predict", str(tiny_run), str(tiny_run), "--backend", "onnx",
                                      "--precision", "bf16-mixed"])
    assert result.exit_code == 2 and "auto or 32 with the onnx backend" in result.output


def test_precision_as_yaml_and_python_give_it_is_read_as_the_name_it_has(tiny_run, tmp_path):
    """`precision: 32` in a config file is the int 32, and so is `fit(precision=32)`: refused as "must be one of
    {16-mixed, 32, auto, bf16-mixed}. Received: precision=32". Lightning's 16 and bf16 mean the mixed ones."""
    from imgclf.config import TrainConfig
    from imgclf.config_text import load_config_file

    (tmp_path / "c.yaml").write_text("precision: 32\n")
    assert load_config_file(tmp_path / "c.yaml")["precision"] == 32  # as YAML reads it
    assert TrainConfig(data=str(tmp_path), **load_config_file(tmp_path / "c.yaml")).precision == "32"
    assert [TrainConfig(data=str(tmp_path), precision=p).precision for p in (16, "16", "bf16")] == \
        ["16-mixed", "16-mixed", "bf16-mixed"]
    assert Classifier.load(tiny_run, precision=32).precision == "32"
    with pytest.raises(ImgclfError, match="precision must be one of"):
        Classifier.load(tiny_run, precision=8)
