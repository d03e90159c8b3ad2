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
from imgclf.quantize import CALIBRATION_IMAGES, calibration_pixels, calibration_split


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


def test_every_convolution_and_nothing_else_runs_in_int8(run, int8_path, tmp_path, monkeypatch):
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
    # per-channel: one scale per output channel of each convolution
    shapes = {i.name: tuple(i.dims) for i in graph.initializer}
    dequantize = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    for conv in convs:
        weight = dequantize[conv.input[1]]
        assert shapes[weight.input[1]] == (shapes[weight.input[0]][0],)
    assert not [n for n in graph.node if n.op_type in ("Gemm", "MatMul") and fed_by_dequantize & set(n.input)]
    plain_path = export_run(run, "onnx", out=tmp_path)
    plain = onnx.load(str(plain_path)).graph
    assert not [n for n in plain.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    # an fp32 export's card keeps the shape it had before int8 existed: older imgclf releases refuse unknown keys
    assert not {"quantization", "quantization_check"} & set(read_json(plain_path.with_name("model.onnx.json"))["export"])
    assert load_onnx(plain_path).precision == "32"
    # "~/..." as the shell reads it: loaded from there, and recorded so (it was "CWD/~/...")
    monkeypatch.setenv("HOME", str(plain_path.parent.parent))
    assert load_onnx(f"~/{plain_path.parent.name}/{plain_path.name}").run_dir == plain_path.absolute()


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
    assert "images" not in check  # the run's own validation split: the key of --calibration FOLDER is left out


def test_the_onnx_backend_serves_the_int8_graph_with_the_answers_of_fp32(run, int8_path):
    torch_clf = Classifier.load(run, precision="32")
    pixels = _test_pixels(run, torch_clf)
    expected = torch_clf.infer_pixels(pixels)
    import onnxruntime

    sessions = []
    with pytest.MonkeyPatch.context() as mp:  # onnxruntime's QDQ propagation made the max-pools run in uint8, slowly
        mp.setattr(onnxruntime, "InferenceSession",
                   lambda *a, _make=onnxruntime.InferenceSession, **kw: sessions.append(kw) or _make(*a, **kw))
        onnx_clf = load_onnx(run)
    assert sessions[0]["disabled_optimizers"] == ["QDQPropagationTransformer"]
    assert onnx_clf.precision == "int8"
    got = onnx_clf.infer_pixels(pixels)
    assert got.probabilities.shape == expected.probabilities.shape
    assert (got.probabilities.argmax(1) == expected.probabilities.argmax(1)).mean() >= 0.9
    assert np.abs(got.probabilities - expected.probabilities).max() > 0  # quantized: not the fp32 graph
    with pytest.raises(ImgclfError, match="precision must be auto with an int8 export.*Received: precision='32'.*"
                                          f"imgclf export {run} --format onnx"):
        load_onnx(run, precision="32")
    # named by its file, the hint still names the run it belongs to (exporting the file itself is refused)
    with pytest.raises(ImgclfError, match=f"imgclf export {run} --format onnx"):
        load_onnx(int8_path, precision="32")


@pytest.fixture(scope="module")
def larger_run(tmp_path_factory) -> Path:
    """A run whose validation split (36 images) is large enough to keep calibration and check apart, and of another
    size than its test split (24)."""
    import imgclf
    from conftest import make_image_folder

    base = tmp_path_factory.mktemp("int8-larger")
    data = make_image_folder(base / "data", per_class=40, seed=3)
    return imgclf.fit({"data": str(data), "model": "simple_cnn", "img_size": 16, "epochs": 2, "batch_size": 16,
                       "lr": 3e-3, "out": str(base / "run"), "progress": False, "seed": 0,
                       "model_args": {"width": 8}, "val_split": 0.3, "test_split": 0.2}).path


def test_the_check_reads_validation_images_apart_from_the_calibration_ones(larger_run, tmp_path):
    """The card's figures are the two graphs' own answers on the validation images calibration did not read,
    recomputed here from the two files."""
    import onnxruntime as ort

    int8 = export_run(larger_run, "onnx", out=tmp_path / "int8", quantize="int8")
    fp32 = export_run(larger_run, "onnx", out=tmp_path / "fp32")
    check = read_json(int8.with_name("model.onnx.json"))["export"]["quantization_check"]
    splits = read_json(larger_run / "dataset.json")["splits"]
    assert len(splits["val"]["files"]) == 36 != len(splits["test"]["files"])
    assert (check["calibration_images"], check["checked_images"], check["overlap"]) == (18, 18, False)
    pixels, unreadable = calibration_pixels(larger_run, Classifier.load(larger_run).decode)
    _, checked, _ = calibration_split(len(pixels))
    p32, _, u32 = ort.InferenceSession(str(fp32)).run(None, {"images": pixels[checked]})
    p8, _, u8 = ort.InferenceSession(str(int8)).run(None, {"images": pixels[checked]})
    assert unreadable == 0 and np.abs(p8 - p32).max() > 0  # two graphs, not one compared with itself
    assert check["top1_agreement"] == round(float((p32.argmax(1) == p8.argmax(1)).mean()), 5)
    assert check["unknown_agreement"] == round(float((u32 == u8).mean()), 5)
    assert check["max_probability_change"] == pytest.approx(float(np.abs(p32 - p8).max()), abs=1e-5)
    assert "too few readable ones" not in int8.with_name("model.onnx.md").read_text()

    # a threshold between the two graphs' scores of one image: the check must count its flag as changed
    _, s32, _ = ort.InferenceSession(str(fp32)).run(None, {"images": pixels[checked]})
    _, s8, _ = ort.InferenceSession(str(int8)).run(None, {"images": pixels[checked]})
    i = int(np.abs(s32 - s8).argmax())
    copy = Path(shutil.copytree(larger_run, tmp_path / "run", ignore=shutil.ignore_patterns("export")))
    card = read_json(copy / "model.json")
    threshold = card["unknown"]["threshold"] = float((s32[i] + s8[i]) / 2)
    write_json(copy / "model.json", card)
    check = read_json(export_run(copy, "onnx", quantize="int8").with_name("model.onnx.json"))["export"][
        "quantization_check"]
    assert check["unknown_agreement"] == round(float(((s32 < threshold) == (s8 < threshold)).mean()), 5) < 1


def test_calibration_and_check_images_are_apart_once_there_are_enough():
    calibration, checked, overlap = calibration_split(1_000)
    assert (calibration, checked, overlap) == (slice(0, CALIBRATION_IMAGES), slice(CALIBRATION_IMAGES, 1_000), False)
    assert calibration_split(40) == (slice(0, 20), slice(20, 40), False)
    assert calibration_split(12) == (slice(0, 12), slice(0, 12), True)


def test_low_agreement_is_a_warning(run, tmp_path, monkeypatch, capsys):
    import imgclf.quantize

    export_run(run, "onnx", out=tmp_path, quantize="int8")
    assert "the same top-1 class for" not in capsys.readouterr().err  # it agrees on every image
    monkeypatch.setattr(imgclf.quantize, "AGREEMENT_WARN", 1.01)  # no graph agrees above 100 %
    export_run(run, "onnx", out=tmp_path, quantize="int8")
    val = len(read_json(run / "dataset.json")["splits"]["val"]["files"])
    err = capsys.readouterr().err
    assert (f"the int8 graph gives the fp32 graph's answers below 101%: the same top-1 class for {val} of {val} "
            f"validation images (100.0%); the same unknown flag for") in err
    assert "`imgclf evaluate RUN --backend onnx` against the run's own test scores" in err


def test_bad_quantize_requests_are_one_clear_error(run, int8_path, tmp_path):
    with pytest.raises(ImgclfError, match=r"quantize must be one of .*Received: quantize='int4'"):
        export_run(run, "onnx", out=tmp_path, quantize="int4")
    with pytest.raises(ImgclfError, match=r"quantize must be none with --format pt2.*--format onnx"):
        export_run(run, "pt2", out=tmp_path, quantize="int8")
    moved = Path(shutil.copytree(run, tmp_path / "moved", ignore=shutil.ignore_patterns("export")))
    # a copy of the file alone: the hint cannot name a run
    alone = Path(shutil.copy(int8_path, tmp_path / "alone.onnx"))
    with pytest.raises(ImgclfError, match="from the run it was exported from"):
        load_onnx(alone, precision="32")
    dataset = read_json(moved / "dataset.json")
    write_json(moved / "dataset.json", {**dataset, "root": str(tmp_path / "gone")})
    with pytest.raises(ImgclfError, match=r"validation images are on disk.*none of its \d+ validation images could "
                                          r"be read.*export without --quantize"):
        export_run(moved, "onnx", quantize="int8")
    assert not (moved / "export" / "model.onnx").exists()


def test_a_run_whose_data_is_elsewhere_calibrates_on_a_folder_given(run, tmp_path, monkeypatch):
    """Trained on another machine: its validation images are not here, so calibration and check read the folder
    given, apart once it holds enough images, and the card, the page and the command say which images they were."""
    from conftest import make_image_folder

    moved = Path(shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("export")))
    write_json(moved / "dataset.json", {**read_json(moved / "dataset.json"), "root": str(tmp_path / "gone")})
    folder = make_image_folder(tmp_path / "like-its-data", per_class=14, seed=5)  # 42 images, unlike the tiny val
    (folder / "notes.txt").write_text("not an image")
    bomb = folder / "cat" / "bomb.png"  # one file the decoder refuses: its reason is given, as predict gives it
    from PIL import Image

    Image.new("L", (10_000, 10_000)).save(bomb)
    monkeypatch.chdir(folder.parent)  # given relative, recorded whole: a card read elsewhere must say which images
    result = CliRunner().invoke(app, ["export", str(moved), "--quantize", "int8", "--calibration", folder.name])
    assert result.exit_code == 0, result.output
    assert "could not be read (e.g. like-its-data/cat/bomb.png: " in " ".join(result.output.split())
    assert "decompression bomb" in result.output
    bomb.unlink()
    exported = moved / "export" / "model.onnx"
    check = read_json(exported.with_name("model.onnx.json"))["export"]["quantization_check"]
    assert check["images"] == folder.name and check["unreadable_images"] == 1  # its name: the card travels
    assert (check["calibration_images"], check["checked_images"], check["overlap"]) == (21, 21, False)
    assert f"on 21 images of {folder.name}; 1 unreadable one passed over:" in " ".join(result.output.split())
    page = exported.with_name("model.onnx.md").read_text()
    assert f"ranges were set on the images in `{folder.name}`" in page and str(tmp_path) not in page
    assert "only" not in result.output  # 42 images: enough to keep calibration and check apart
    assert load_onnx(exported).precision == "int8"
    # the model file, which is shared, holds no path of the exporting machine
    assert str(tmp_path).encode() not in exported.read_bytes()

    for bad, why in ((folder / "cat" / sorted(p.name for p in (folder / "cat").iterdir())[0], "a file"),
                     (tmp_path / "nowhere", "not found"), (Path(tmp_path / "empty"), "no image file in it")):
        if why.startswith("no image"):
            bad.mkdir()
        with pytest.raises(ImgclfError, match=rf"calibration must be a folder of images like the run's.*{why}"):
            export_run(moved, "onnx", quantize="int8", calibration=bad)
    refused = CliRunner().invoke(app, ["export", str(moved), "--calibration", str(folder)])
    assert refused.exit_code == 2 and "calibration" in refused.output and "--quantize int8" in refused.output
    # a folder of one image: ranges from it alone, checked on itself, are said to be a weak calibration
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(next((folder / "cat").iterdir()), one / "a.png")
    result = CliRunner().invoke(app, ["export", str(moved), "--quantize", "int8", "--calibration", str(one)])
    assert result.exit_code == 0 and "only 1 readable image to set the int8 ranges on" in result.output
    assert f"on 1 image of {one.name} (its calibration images too" in result.output


def test_cli_export_int8_prints_the_agreement(run, tmp_path):
    result = CliRunner().invoke(app, ["export", str(run), "--quantize", "int8", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "int8: Against the fp32 graph on" in result.output and "the same top-1 class for" in result.output
    assert "its calibration images too" in result.output
    assert "pre-processing" not in result.output  # onnxruntime's advice, for a step the export has taken
    assert (tmp_path / "model.onnx").exists()


def test_the_int8_page_says_so_and_its_example_answers_as_imgclf_does(run, int8_path, image_folder, monkeypatch):
    from export_pages import run_page_example

    page = int8_path.with_name("model.onnx.md")
    text = page.read_text()
    assert "convolutions compute in int8" in text and "graph computes in float32" not in text
    check = read_json(int8_path.with_name("model.onnx.json"))["export"]["quantization_check"]
    assert f"the same top-1 class for {check['top1_agreement']:.2%}" in text
    assert "(its calibration images too: too few readable ones to keep apart)" in text  # the tiny run's 12
    assert 'disabled_optimizers=["QDQPropagationTransformer"]' in text
    paths = sorted(str(p) for p in image_folder.glob("*/*.png"))[::5]
    theirs = run_page_example(page, paths, monkeypatch)
    ours = load_onnx(run).predict(paths)
    assert [t[0] for t in theirs] == [p.label for p in ours]
    assert np.allclose([t[2] for t in theirs], [p.probability for p in ours], atol=1e-6)


def test_unreadable_validation_images_are_passed_over_counted_and_said(run, tmp_path, capsys):
    data = Path(read_json(run / "dataset.json")["root"])
    copy = Path(shutil.copytree(data, tmp_path / "data"))
    moved = Path(shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("export")))
    dataset = read_json(moved / "dataset.json")
    write_json(moved / "dataset.json", {**dataset, "root": str(copy)})
    val = dataset["splits"]["val"]["files"]
    for name in val[:3]:
        (copy / name).unlink()
    check = read_json(export_run(moved, "onnx", quantize="int8").with_name("model.onnx.json"))["export"][
        "quantization_check"]
    assert check["unreadable_images"] == 3 and check["checked_images"] == len(val) - 3
    assert f"3 of the {len(val)} validation images drawn for int8 calibration could not be read" \
        in capsys.readouterr().err
    assert "3 unreadable ones passed over" in (moved / "export" / "model.onnx.md").read_text()


def test_a_multilabel_check_compares_the_labels_at_the_runs_thresholds(tmp_path):
    """The answer of a multi-label run is its label set: the check counts images whose labels are all the same."""
    from imgclf.quantize import compare_graphs

    class Session:  # the two graphs' probabilities, as onnxruntime would answer them
        def __init__(self, model, **_):
            self.probabilities = {b"fp32": np.array([[0.9, 0.6], [0.2, 0.8]], dtype=np.float32),
                                  b"int8": np.array([[0.9, 0.4], [0.1, 0.8]], dtype=np.float32)}[model]

        def run(self, _names, feed):
            n = len(next(iter(feed.values())))
            return [self.probabilities[:n], np.zeros(n, np.float32), np.zeros(n, bool)]

    import onnxruntime

    pixels = np.zeros((2, 4, 4, 1), np.uint8)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(onnxruntime, "InferenceSession", Session)
        check = compare_graphs(b"fp32", b"int8", pixels, "images", 2, True, thresholds=np.array([0.5, 0.5]))
        plain = compare_graphs(b"fp32", b"int8", pixels, "images", 2, True)
    assert check.labels_agreement == 0.5 and check.top1_agreement == 1.0  # image 0 lost its second label
    assert plain.labels_agreement is None


def test_only_onnxruntimes_own_log_records_are_dropped_while_quantizing(caplog):
    """onnxruntime's quantizer advises through the root logger; a library caller's warnings, from any logger or
    thread, must still be seen meanwhile (raising the root level silenced them all)."""
    import logging
    import os

    from imgclf.quantize import _quiet_quantizer

    def theirs() -> logging.LogRecord:
        return logging.LogRecord("root", logging.WARNING, os.sep.join(["", "site-packages", "onnxruntime",
                                 "quantization", "quantize.py"]), 1, "theirs", None, None)

    with caplog.at_level(logging.WARNING), _quiet_quantizer():
        logging.getLogger("myapp").warning("mine")
        logging.warning("mine, through the root logger")
        logging.getLogger().handle(theirs())
    logging.getLogger().handle(theirs())  # afterwards: no longer dropped
    assert [r.getMessage() for r in caplog.records] == ["mine", "mine, through the root logger", "theirs"]


def test_a_failed_export_never_leaves_the_old_card_beside_another_graph(run, tmp_path, monkeypatch):
    import imgclf.export

    export_run(run, "onnx", out=tmp_path)  # fp32, with its card and page
    real = imgclf.export.atomic_write_bytes

    def full_disk(path, data):
        real(path, data)  # the new graph lands, then the disk is full
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(imgclf.export, "atomic_write_bytes", full_disk)
    with pytest.raises(OSError):
        export_run(run, "onnx", out=tmp_path, quantize="int8")
    # the int8 graph without a card or page beside it, rather than the fp32 graph's card describing it
    assert (tmp_path / "model.onnx").exists()
    assert not (tmp_path / "model.onnx.json").exists() and not (tmp_path / "model.onnx.md").exists()


def test_evaluate_scores_the_export_beside_the_runs_own_scores(run, int8_path):
    import imgclf

    own = {name: (run / name).read_bytes() for name in ("metrics.json", "model.json")}
    metrics = imgclf.evaluate(run, backend="onnx", progress=False)
    assert (metrics.backend, metrics.precision) == ("onnx", "int8")
    # apart from an fp32 export's scores (evaluations/onnx-test), which replaced them without a word
    written = read_json(run / "evaluations" / "onnx-int8-test" / "metrics.json")
    assert (written["backend"], written["precision"], written["accuracy"]) == ("onnx", "int8", metrics.accuracy)
    assert (run / "evaluations" / "onnx-int8-test" / "predictions.csv").exists()
    assert not (run / "evaluations" / "onnx-test").exists()
    # the run's own scores and the card's headline (the report's, GET /model's) stay the network's
    assert {name: (run / name).read_bytes() for name in own} == own
    dataset = read_json(run / "dataset.json")
    onnx_clf = load_onnx(run)
    pixels = np.stack([onnx_clf.decode(str(Path(dataset["root"]) / f)) for f in dataset["splits"]["test"]["files"]])
    labels = [onnx_clf.classes.index(c) for c in dataset["splits"]["test"]["labels"]] \
        if isinstance(dataset["splits"]["test"]["labels"][0], str) else dataset["splits"]["test"]["labels"]
    assert metrics.accuracy == pytest.approx(float((onnx_clf.predict_pixels(pixels).argmax(1) == labels).mean()))
    result = CliRunner().invoke(app, ["evaluate", str(run), "--backend", "onnx"])
    assert result.exit_code == 0, result.output
    assert "(ONNX export, int8): accuracy" in result.output
    assert "evaluations/onnx-int8-test/metrics.json" in result.output
    # the loaded graph given as the run: how to score it, said once
    with pytest.raises(ImgclfError) as refused:
        imgclf.evaluate(onnx_clf)
    assert f"imgclf.evaluate({str(run.absolute())!r}, backend='onnx') to score its export" in str(refused.value)
    assert str(refused.value).count("backend='onnx'") == 1
    # a Classifier loaded at bf16 (auto on this CPU, perhaps) names the run; the export's precision is its own
    assert imgclf.evaluate(imgclf.load(run, precision="bf16-mixed"), backend="onnx", progress=False).precision == "int8"


def test_an_fp32_export_evaluates_as_the_network_at_fp32(run, tmp_path):
    import imgclf

    fp32 = Path(shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("export", "evaluations")))
    export_run(fp32, "onnx", quantize="int8")
    int8 = imgclf.evaluate(fp32, backend="onnx", progress=False)
    export_run(fp32, "onnx")
    graph = imgclf.evaluate(fp32, backend="onnx", progress=False)
    # side by side: the fp32 export's scores beside the int8 export's, not over them
    assert read_json(fp32 / "evaluations" / "onnx-test" / "metrics.json")["precision"] == "32"
    assert read_json(fp32 / "evaluations" / "onnx-int8-test" / "metrics.json")["accuracy"] == int8.accuracy
    network = imgclf.evaluate(fp32, split="test", precision="32", progress=False, tta=False)
    assert (graph.backend, graph.precision, network.backend) == ("onnx", "32", "torch")
    # the network's file keeps the shape it had before the field: releases before it refuse keys they lack
    assert "backend" not in read_json(fp32 / "metrics.json")
    assert graph.accuracy == network.accuracy and graph.loss == pytest.approx(network.loss, abs=1e-5)


def test_after_a_refit_the_stale_export_scores_say_to_export_first(run, tmp_path, capsys):
    from imgclf.evaluation.run_eval import warn_of_earlier_evaluations

    copy = Path(shutil.copytree(run, tmp_path / "run"))
    (copy / "evaluations" / "onnx-test").mkdir(parents=True, exist_ok=True)
    (copy / "evaluations" / "onnx-test" / "metrics.json").write_text("{}")
    warn_of_earlier_evaluations(copy, "with the earlier temperature and unknown threshold")
    assert "for evaluations/onnx-*, imgclf export RUN first, then imgclf evaluate RUN --backend onnx" in \
        capsys.readouterr().err
