import csv
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import imgclf
from conftest import make_image_folder
from imgclf.records import RunDir, load_card
from imgclf.evaluation.metrics import compute_metrics
from imgclf.errors import ImgclfError
from imgclf.inference import build_from_card
from imgclf.predict_format import format_predictions


def test_model_card_schema_and_param_count(tiny_run):
    card = load_card(tiny_run)
    raw = json.loads((tiny_run / "model.json").read_text())
    assert {"architecture", "model_args", "classes", "img_size", "in_chans", "color", "mean", "std",
            "interpolation", "num_params", "metrics", "training", "versions", "hardware"} <= set(raw)
    model = build_from_card(card)
    assert card.num_params == sum(p.numel() for p in model.parameters())
    assert raw["versions"]["torch"] and raw["hardware"]["cores"]


def test_predict_files_folders_arrays_and_broken(tiny_run, image_folder, tmp_path):
    clf = imgclf.load(tiny_run)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnope")
    arr = np.asarray(Image.open(next((image_folder / "dog").iterdir())).convert("RGB"))
    preds = clf.predict([str(image_folder / "cat"), str(broken), arr], top_k=2)
    assert len(preds) == 20 + 2
    assert preds[20].error and preds[20].label is None
    # not judged, as the CLI's JSON and the HTTP service say it (a Python False read as "known")
    assert preds[20].unknown is None and preds[20].as_dict()["unknown"] is None and preds[0].unknown is False
    good = [p for p in preds if not p.error]
    assert all(len(p.top) == 2 and p.top[0][1] >= p.top[1][1] for p in good)
    assert all(abs(sum(prob for _, prob in p.top) - 1) < 1 or len(clf.classes) > 2 for p in good)
    cats = [p.label for p in preds[:20]]
    assert cats.count("cat") >= 15, "the tiny run learns the synthetic classes"


def test_a_folder_is_walked_as_training_walks_a_class_folder(tiny_run, image_folder, tmp_path):
    """Symlinked sub-folders are followed (training counts them; predict left them out without a word), a
    dangling link gets its error row, files that are not images are left out."""
    import os
    import shutil

    from imgclf.data.folder import scan_folder

    tree = tmp_path / "tree"
    shutil.copytree(image_folder / "cat", tree / "cat")
    os.symlink(image_folder / "dog", tree / "cat" / "linked")
    os.symlink(tmp_path / "nowhere.png", tree / "cat" / "dangling.png")
    (tree / "cat" / "notes.txt").write_text("not an image")
    shutil.copytree(image_folder / "fox", tree / "fox")
    preds = imgclf.load(tiny_run).predict([str(tree)])
    readable = [p.path for p in preds if not p.error]
    scanned = [path for paths in scan_folder(tree).files.values() for path, _ in paths]
    assert sorted(readable) == sorted(scanned) and len(readable) == 60
    assert [p.path for p in preds if p.error] == [str(tree / "cat" / "dangling.png")]


def test_predict_takes_pil_images_and_numpy_arrays_as_it_takes_the_file(tiny_run, image_folder):
    clf = imgclf.load(tiny_run)
    path = sorted((image_folder / "fox").iterdir())[0]
    expected = clf.predict(str(path), top_k=3)[0]
    pil = Image.open(path)
    rgb = np.asarray(pil.convert("RGB"))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    inputs = [pil, rgb, rgb / 255.0, rgb.astype(np.float32) / 255, rgba, np.stack([rgb, rgb])]
    preds = clf.predict(inputs, top_k=3)
    assert [p.path for p in preds] == [f"images[{i}]" for i in range(5)] + ["images[5][0]", "images[5][1]"]
    for p in preds:
        assert p.error is None and p.label == expected.label
        np.testing.assert_allclose([prob for _, prob in p.top], [prob for _, prob in expected.top], atol=1e-6)
    # one image on its own, a batch on its own, and grayscale arrays (H x W, H x W x 1) on an RGB model
    assert clf.predict(pil)[0].label == expected.label
    assert [p.path for p in clf.predict(np.stack([rgb, rgb, rgb]))] == ["images[0]", "images[1]", "images[2]"]
    # premultiplied alpha (RGBa, La) as any other mode: Pillow has no La -> RGBA conversion
    for premultiplied in ("RGBa", "La"):
        p = clf.predict(pil.convert("RGBA").convert(premultiplied))[0]
        assert p.error is None, (premultiplied, p.error)
    gray = np.asarray(pil.convert("L"))
    one, two = clf.predict([gray, gray[..., None]])
    assert one.top == two.top and one.error is None
    # whole numbers 0..255 in a wider type (np.array of nested lists is int64) are the same image
    alone = clf.predict(rgb, top_k=3)[0].top
    for p in clf.predict([rgb.astype(np.int64), np.array(rgb.tolist())], top_k=3):
        assert [c for c, _ in p.top] == [c for c, _ in alone]
        np.testing.assert_allclose([q for _, q in p.top], [q for _, q in alone], atol=1e-6)  # batched: rounding


@pytest.mark.parametrize("bad, pattern", [
    (3, r"images must be an image file or folder path, a PIL image .*, a numpy array .*Received: images=3 "
        r"\(type int\)"),
    (b"\x89PNG", r"Received: images=b'\\x89PNG' \(type bytes\)\. For an encoded image in memory, pass io\.BytesIO"),
    # iterated, a DataFrame gave its column names, read as files ("path: file not found")
    ("TABLE", r"Received: an object of type DataFrame\. Pass the column of paths: df\['path'\]"),
    # read as text, a PNG's bytes failed as "'utf-8' codec can't decode byte 0x89"
    (["TEXT"], r"images\[0\] must be .*Received: a file opened as text .*Open image files in binary mode"),
    # named as passed, not as the channels-last array it becomes
    (torch.rand(2, 3, 16, 16) * 255, r"Received: a float32 tensor of shape 2x3x16x16 \(values from .*Divide 0\.\.255"),
    # torchvision's Normalize: "divide by 255" was no answer
    (torch.rand(1, 3, 16, 16) - 0.5, r"tensor of shape 1x3x16x16 \(values from -.*Pass pixels in \[0, 1\] before "
                                     r"Normalize \(or undo it: x \* std \+ mean\)"),
    # N grey images (MNIST's .data) were told to permute(2, 0, 1)
    (torch.zeros(2, 16, 16, dtype=torch.uint8), r"tensor of shape 2x16x16 \(not H x W, C x H x W .*A batch of grey "
                                                r"images \(N x H x W, as MNIST's \.data\): pass tensor\.unsqueeze\(1\)"),
    (torch.zeros(2, 16, 16, 3, dtype=torch.uint8), r"shape 2x16x16x3 \(not H x W.*A channels-last batch \(N x H x W x "
                                                   r"C\): pass tensor\.permute\(0, 3, 1, 2\)"),
    # channels last, as numpy holds images: refused with its own shape, not the one a permute made of it
    (torch.zeros(16, 16, 3, dtype=torch.uint8), r"Received: a uint8 tensor of shape 16x16x3 \(not H x W, C x H x W"),
    ([None], r"images\[0\] must be .*Received: images\[0\]=None"),
    ([np.zeros((8, 8, 2), np.uint8)], r"images\[0\] must be .*Received: a uint8 array of shape 8x8x2 \(not an image shape\)"),
    ([np.full((8, 8), 200.0)], r"Received: a float64 array of shape 8x8 \(values from 200 to 200\)\. Divide 0\.\.255 values by 255"),
    # not "values from nan to nan ... Divide 0..255 values by 255": the NaNs are the fault
    ([np.where(np.eye(8) > 0, np.nan, 0.5)], r"float64 array of shape 8x8 \(8 of its 64 values are NaN or infinite\)"
                                             r"\. Find where the NaNs come from"),
    ([np.full((8, 8), 300, np.int64)], r"int64 array of shape 8x8 \(values from 300 to 300\)\. Scale them to 0\.\.255"),
    ([np.zeros((8, 8), bool)], r"bool array of shape 8x8\. Convert 0\.\.255 values with \.astype\(np\.uint8\)"),
    # a 16-bit image, whose file is read on the 0..65535 scale: 200 is dark there, not 8-bit bright
    ([np.full((8, 8), 200, np.uint16)], r"uint16 array of shape 8x8\. A 16-bit image: divide by 65535"),
    ([np.zeros((0, 8, 3), np.uint8)], r"0x8x3 \(no pixels\)"),
    # Keras' MNIST and scikit-learn's digits.images hold grey batches as N x H x W
    (np.zeros((5, 8, 8), np.uint8), r"uint8 array of shape 5x8x8 \(not an image shape\)\. A batch of grey images "
                                    r"\(N x H x W, .*pass arr\[\.\.\., None\]"),
    # not torch's "can't convert Sparse layout tensor to numpy" from inside
    (torch.zeros(3, 16, 16).to_sparse(), r"Received: a float32 tensor of shape 3x16x16 \(a sparse_coo tensor\)\. "
                                         r"Pass tensor\.to_dense\(\)"),
    (torch.empty(3, 16, 16, device="meta"), r"\(a meta tensor: it holds no values\)"),
])
def test_predict_refuses_what_is_not_an_image_before_any_work(tiny_run, image_folder, bad, pattern):

    clf = imgclf.load(tiny_run)
    if isinstance(bad, str) and bad == "TABLE":
        import pandas as pd

        bad = pd.DataFrame({"path": [str(next((image_folder / "cat").iterdir()))]})
    if isinstance(bad, list) and bad and isinstance(bad[0], str) and bad[0] == "TEXT":
        bad = [open(next((image_folder / "cat").iterdir()))]  # noqa: SIM115 (the text mode is the point)
    with pytest.raises(ImgclfError, match=pattern):
        clf.predict(bad if not isinstance(bad, list) else bad + [str(image_folder / "cat")])


@pytest.mark.parametrize("call, pattern", [
    (lambda clf, f: clf.predict(f, top_k=None), r"top_k must be a whole number >= 1 .*Received: top_k=None"),
    (lambda clf, f: clf.predict(f, top_k="3"), r"Received: top_k='3'"),
    (lambda clf, f: clf.predict(f, top_k=2.5), r"Received: top_k=2\.5"),
    (lambda clf, f: clf.infer_pixels(np.zeros((1, 8, 8, 1), np.uint8)),
     r"pixels must be uint8 images of shape \(N, 16, 16, 3\).*Received: an array of shape \(1, 8, 8, 1\)"),
    (lambda clf, f: clf.embed_pixels(np.zeros((2, 16, 16), np.uint8)), r"Received: an array of shape \(2, 16, 16\)"),
    (lambda clf, f: clf.embed_pixels(np.zeros((2, 16, 16, 3), np.uint8), batch_size=0),
     r"batch_size must be a whole number >= 1\. Received: batch_size=0"),
    (lambda clf, f: imgclf.load(clf.run_dir, device="foo"), r"device must be cpu, cuda, cuda:N or mps.*device='foo'"),
    (lambda clf, f: imgclf.load(clf.run_dir, device="cuda:7"), r"device='cuda:7' \(\d+ CUDA devices here\)"),
])
def test_api_arguments_of_the_wrong_kind_get_the_usual_one_line_error(tiny_run, image_folder, call, pattern):
    """Not torch's or numpy's errors from deep inside (a TypeError comparing None, 'mat1 and mat2 shapes')."""

    clf = imgclf.load(tiny_run)
    with pytest.raises(ImgclfError, match=pattern):
        call(clf, [str(next((image_folder / "cat").iterdir()))])


def test_classifier_repr_says_what_is_loaded(tiny_run):
    clf = imgclf.load(tiny_run, precision="32")
    assert repr(clf) == (f"Classifier(architecture='simple_cnn', classes=3, img_size=16, color='rgb', device='cpu', "
                         f"precision='32', run={str(tiny_run.absolute())!r})")


def test_predict_pixels_matches_evaluation(tiny_run):
    clf = imgclf.load(tiny_run)
    rows = [r for r in csv.DictReader(open(tiny_run / "predictions.csv")) if not r["error"]]
    preds = clf.predict([r["path"] for r in rows])
    # predictions.csv keeps the closest class in `pred` and the flag in `unknown`; a prediction says "unknown"
    assert [p.best_label for p in preds] == [r["pred"] for r in rows]
    assert [p.unknown for p in preds] == [r["unknown"] == "1" for r in rows]
    assert [p.label for p in preds] == ["unknown" if r["unknown"] == "1" else r["pred"] for r in rows]
    assert all(abs(p.probability - float(r["prob"])) < 1e-5 for p, r in zip(preds, rows))
    assert all(abs(p.score - float(r["score"])) <= 1e-4 * max(1.0, abs(p.score)) for p, r in zip(preds, rows))


def test_decode_takes_a_tensor_as_predict_does_and_names_what_it_cannot_take(tiny_run, image_folder):
    """decode is typed to take what predict takes, a tensor among them, yet read a tensor (and an int) as a file:
    "damaged file (AttributeError: 'Tensor' object has no attribute 'read')"."""
    import torch
    from PIL import Image

    clf = imgclf.load(tiny_run)
    path = next((image_folder / "cat").iterdir())
    as_array = np.asarray(Image.open(path).convert("RGB"))
    tensor = torch.from_numpy(as_array.copy()).permute(2, 0, 1)
    assert np.array_equal(clf.decode(tensor), clf.decode(as_array))
    assert np.array_equal(clf.decode(tensor.float() / 255), clf.decode(as_array))
    for wrong, received in ((5, r"source=5"), (object(), r"an object of type object"),
                            (tensor[None].repeat(2, 1, 1, 1), r"a uint8 tensor of shape 2x3x")):
        with pytest.raises(ImgclfError, match=rf"^source must be .*Received: {received}"):
            clf.decode(wrong)
    pixels = clf.decode(tensor)[None]
    for method in (clf.predict_pixels, clf.infer_pixels, clf.embed_pixels):
        for batch in ("2", 1.5, 0, True):  # "'<' not supported", "'float' object cannot be interpreted"
            with pytest.raises(ImgclfError, match=r"^batch_size must be a whole number >= 1"):
                method(pixels, batch_size=batch)
        with pytest.raises(ImgclfError, match=r"^pixels must be a uint8 array .*Received: an object of type list.*"
                                              r"np\.stack"):
            method(list(pixels))


def test_pixel_methods_refuse_what_is_not_uint8(tiny_run, image_folder):
    """Floats in [0, 1] given to predict_pixels were cast to uint8: every image a black one, answered without a
    word."""
    import torch

    clf = imgclf.load(tiny_run)
    pixels = clf.decode(str(next((image_folder / "cat").iterdir())))[None]
    for floats in (pixels.astype(np.float32) / 255, torch.from_numpy(pixels.copy()).float() / 255):
        for method in (clf.predict_pixels, clf.infer_pixels, clf.embed_pixels):
            with pytest.raises(ImgclfError, match=r"pixels must be uint8 images .* Received: an array of "
                                                  r".*float32 \(Classifier.predict takes floats in \[0, 1\]\)"):
                method(floats)
    assert clf.predict_pixels(torch.from_numpy(pixels.copy())).shape == (1, 3)
    # whole numbers in 0..255 are pixel values in another type; outside that range they are not pixels
    assert np.array_equal(clf.predict_pixels(pixels.astype(np.int64)), clf.predict_pixels(pixels))
    with pytest.raises(ImgclfError, match=r"Received: an array of int16 with values from -1 to 300"):
        clf.predict_pixels(np.where(pixels > 128, 300, -1).astype(np.int16))
    for sixteen in (pixels.astype(np.uint16), torch.from_numpy(pixels.astype(np.int32)).to(torch.uint16)):
        with pytest.raises(ImgclfError, match=r"Received: an array of (torch\.)?uint16 \(a 16-bit image: scale"):
            clf.predict_pixels(sixteen)


def test_predict_keeps_order_across_chunks_and_honours_tta(tiny_run, image_folder, tmp_path, monkeypatch):
    import imgclf.inference as inference

    clf = imgclf.load(tiny_run)
    files = sorted(str(p) for p in (image_folder / "fox").iterdir())[:9]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    files.insert(4, str(broken))
    pixels = np.stack([clf.decode(f) for f in files if f != str(broken)])
    monkeypatch.setattr(inference, "_PREDICT_CHUNK", 4)  # three chunks, the broken file inside the second
    for tta in (False, True):
        preds = clf.predict(files, top_k=len(clf.classes), tta=tta)
        assert [p.path for p in preds] == files and preds[4].error and preds[4].label is None
        expected = clf.predict_pixels(pixels, tta=tta)
        got = np.array([[dict(p.top)[c] for c in clf.classes] for p in preds if not p.error])
        np.testing.assert_allclose(got, expected, atol=1e-6)
    plain = clf.predict(files[:4], top_k=1)
    mirrored = clf.predict(files[:4], top_k=1, tta=True)
    assert any(abs(a.probability - b.probability) > 1e-6 for a, b in zip(plain, mirrored)), "--tta must change something"


def test_formats(tiny_run, image_folder):
    preds = imgclf.load(tiny_run).predict([str(image_folder / "fox")], top_k=3)
    parsed = list(csv.DictReader(io.StringIO(format_predictions(preds, "csv"))))
    assert len(parsed) == 20 and {"path", "label", "probability", "top1_label", "top3_prob", "error"} <= set(parsed[0])
    assert json.loads(format_predictions(preds, "json"))[0]["top"][0]["label"] == preds[0].label
    # probability belongs to best_label, named beside it (an unknown image's label is "unknown", a multi-label
    # image's a set: probability alone read as theirs)
    assert list(parsed[0])[:4] == ["path", "label", "best_label", "probability"]
    assert all(r["best_label"] == r["top1_label"] and r["probability"] == r["top1_prob"] for r in parsed)
    # 6 significant digits: at 4 decimals 0.99995 read 1.0000 and every runner-up 0.0000
    assert all(r["probability"] == f"{p.probability:.6g}" for r, p in zip(parsed, preds))
    # the columns are --top-k's whatever the rows hold: a batch of unreadable files had no top columns at all
    unreadable = imgclf.load(tiny_run).predict([str(tiny_run / "config.yaml")], top_k=3)
    header = format_predictions(unreadable, "csv", top_k=3).splitlines()[0].split(",")
    assert header == format_predictions(preds, "csv", top_k=3).splitlines()[0].split(",")
    assert "top3_prob" in header and "top4_label" not in header


def test_metrics_agree_with_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    logits = rng.normal(size=(200, 3)) + np.eye(3)[y] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = compute_metrics(y, probs, ["a", "b", "c"])
    pred = probs.argmax(1)
    assert m.accuracy == pytest.approx(accuracy_score(y, pred))
    assert m.macro.f1 == pytest.approx(f1_score(y, pred, average="macro"))
    assert m.weighted.precision == pytest.approx(precision_score(y, pred, average="weighted"))
    assert m.per_class["b"].recall == pytest.approx(recall_score(y, pred, average=None)[1])
    assert m.auc["c"] == pytest.approx(roc_auc_score(y == 2, probs[:, 2]))
    assert np.array_equal(np.array(m.confusion).sum(1), np.bincount(y, minlength=3))
    assert 0 <= m.ece <= 1


def test_evaluate_on_another_folder_and_cli(tiny_run, image_folder, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from imgclf.cli import app

    # a copy: the session's run shared by other tests must not gain an evaluations/ folder
    tiny_run = shutil.copytree(tiny_run, tmp_path / "run")
    own = {name: (tiny_run / name).read_bytes() for name in ("metrics.json", "predictions.csv")}
    metrics = imgclf.evaluate(tiny_run, data=image_folder)
    assert metrics.count == 60 and metrics.split.endswith(":all")
    # another data set's scores go beside the run's own, which the report and compare read
    assert {name: (tiny_run / name).read_bytes() for name in own} == own
    written = list((tiny_run / "evaluations").glob("*/metrics.json"))
    assert len(written) == 1 and written[0].parent.name.startswith(image_folder.name)
    assert RunDir(written[0].parent).read_metrics().count == 60
    result = CliRunner().invoke(app, ["evaluate", str(tiny_run), "--data", str(image_folder)])
    assert result.exit_code == 0 and str(written[0]) in " ".join(result.stdout.split()), result.output
    assert len(list((tiny_run / "evaluations").glob("*/metrics.json"))) == 1  # the same folder: same place
    result = CliRunner().invoke(app, ["evaluate", str(tiny_run), "--tta"])
    assert result.exit_code == 0, result.output
    assert "macro avg" in result.stdout and "with TTA" in result.stdout
    result = CliRunner().invoke(app, ["predict", str(tiny_run), str(image_folder / "cat"), "--format", "csv"])
    assert result.exit_code == 0 and result.stdout.count("\n") == 21


def test_evaluate_on_a_folder_of_one_class(tiny_run, image_folder, tmp_path):
    """The model's classes are known, so a folder of new images of one class is an evaluation (its recall): it was
    refused as training data is, for holding fewer than 2 class folders. A folder of none is still refused, now
    saying one class folder will do."""
    import shutil

    tiny_run = shutil.copytree(tiny_run, tmp_path / "run")
    one = tmp_path / "new-cats"
    shutil.copytree(image_folder / "cat", one / "cat")
    metrics = imgclf.evaluate(tiny_run, data=one)
    assert metrics.count == 20 and metrics.per_class["cat"].support == 20
    assert metrics.accuracy == pytest.approx(metrics.per_class["cat"].recall)
    assert {c for c, row in metrics.per_class.items() if row.support} == {"cat"}
    shutil.rmtree(one / "cat")
    with pytest.raises(ImgclfError, match="at least 1 class folder,"):
        imgclf.evaluate(tiny_run, data=one)


def test_non_finite_probabilities_are_named_not_a_scikit_learn_error(tiny_run, tmp_path, monkeypatch):
    """A NaN probability (a reduced precision that overflowed, broken weights) ended evaluate in scikit-learn's bare
    "Input contains NaN"; now the error names the run, how many images, the first of them and what to try."""
    import shutil

    from imgclf.inference import Classifier

    tiny_run = shutil.copytree(tiny_run, tmp_path / "run")
    original = Classifier.infer_pixels

    def one_nan(self, pixels, batch_size=256, tta=False):
        out = original(self, pixels, batch_size, tta)
        out.probabilities[1] = np.nan
        return out

    monkeypatch.setattr(Classifier, "infer_pixels", one_nan)
    with pytest.raises(ImgclfError, match=r"^run_dir must be a model whose outputs are finite numbers\. Received: .*"
                                          r"\(1 of \d+ images got non-finite probabilities at precision \S+, the "
                                          r"first .*\.png\)\. Evaluate again with --precision 32"):
        imgclf.evaluate(tiny_run)


def test_predict_output_takes_its_format_from_the_extension_unless_told(tiny_run, image_folder, tmp_path):
    """`predict -o out.json` wrote the table's text into out.json."""
    from typer.testing import CliRunner

    from imgclf.cli import app

    images = str(image_folder / "cat")
    for name, check in (("out.json", lambda text: len(json.loads(text)) == 20),
                        ("OUT.CSV", lambda text: text.startswith("path,") and text.count("\n") == 21),
                        ("out.txt", lambda text: not text.startswith(("[", "path,")))):
        result = CliRunner().invoke(app, ["predict", str(tiny_run), images, "-o", str(tmp_path / name)])
        assert result.exit_code == 0 and check((tmp_path / name).read_text()), (name, result.output)
        assert result.stderr.strip() == f"wrote {tmp_path / name} (20 predictions)"  # it said nothing at all
    (tmp_path / "broken.png").write_bytes(b"not a png")  # an error row is no prediction
    result = CliRunner().invoke(app, ["predict", str(tiny_run), images, str(tmp_path / "broken.png"), "-o",
                                      str(tmp_path / "mixed.csv")])
    assert result.stderr.strip() == f"wrote {tmp_path / 'mixed.csv'} (20 predictions, 1 unreadable)"
    result = CliRunner().invoke(app, ["predict", str(tiny_run), images, "-o", str(tmp_path / "p.xlsx")])
    assert result.exit_code == 0 and "warning output p.xlsx gets the table as text" in result.output
    result = CliRunner().invoke(app, ["predict", str(tiny_run), images, "-o", str(tmp_path / "x.json"),
                                      "--format", "csv"])  # told: as told, and said (it was written silently)
    assert result.exit_code == 0 and (tmp_path / "x.json").read_text().startswith("path,")
    assert "warning output x.json ends in .json but gets --format csv, as asked" in result.output


def test_predict_output_writes_through_a_link_or_a_pipe_and_dash_is_stdout(tiny_run, image_folder, tmp_path,
                                                                           monkeypatch):
    """The temp file's rename put a regular file where -o named a symlink (the link's target kept its old text) or
    a device (/dev/stdout, a link to the process's stdout, became a file); `-o -` wrote a file named -."""
    import os
    import threading
    from pathlib import Path

    from typer.testing import CliRunner

    from imgclf.cli import app

    images = str(image_folder / "cat")
    target, link = tmp_path / "target.csv", tmp_path / "link.csv"
    target.write_text("old")
    link.symlink_to(target)
    result = CliRunner().invoke(app, ["predict", str(tiny_run), images, "-o", str(link)])
    assert result.exit_code == 0 and link.is_symlink() and target.read_text().startswith("path,"), result.output
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    read: list[str] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_text()), daemon=True)
    reader.start()
    result = CliRunner().invoke(app, ["predict", str(tiny_run), images, "-o", str(fifo), "--format", "json"])
    reader.join(timeout=60)
    assert result.exit_code == 0 and fifo.is_fifo() and len(json.loads(read[0])) == 20, result.output
    # a stream's name (/dev/stdout, /proc/self/fd/N) whose stream goes to a file: written to, not replaced
    redirected = tmp_path / "redirected.txt"
    with open(redirected, "w") as stream:
        stream.write("written before\n")
        stream.flush()
        result = CliRunner().invoke(app, ["predict", str(tiny_run), images, "-o", f"/proc/self/fd/{stream.fileno()}",
                                          "--format", "csv"])
    assert result.exit_code == 0 and redirected.read_text().startswith("written before\npath,"), result.output
    assert "wrote" not in redirected.read_text()  # the note goes to stderr, never into the predictions
    # a file of its own under /dev (tmpfs) is replaced as any file is, not appended to
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        own = shm / f"imgclf-test-{os.getpid()}.csv"
        try:
            for _ in range(2):
                result = CliRunner().invoke(app, ["predict", str(tiny_run), images, "-o", str(own)])
            assert result.exit_code == 0 and own.read_text().count("path,") == 1, result.output
        finally:
            own.unlink(missing_ok=True)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["predict", str(tiny_run), images, "-o", "-", "--format", "json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 20 and not (tmp_path / "-").exists()


def test_a_float_pil_image_reads_as_the_same_float_array_and_an_empty_one_is_an_error_entry(tiny_run):
    """A PIL 'F' image holds float pixels, read as numpy floats are ([0, 1] scaled to 0..255; converting it to 'L'
    would read 0.5 as black); a 0 x 0 image has no pixels to predict from, as an empty file has none."""
    from PIL import Image

    clf = imgclf.load(tiny_run)
    values = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    as_pil, as_array = clf.predict([Image.fromarray(values), values])
    assert as_pil.probability == as_array.probability and as_pil.top == as_array.top
    grey = clf.predict([Image.fromarray(np.full((16, 16), 0.5, np.float32)), np.full((16, 16), 128, np.uint8)])
    assert grey[0].probability == grey[1].probability  # mid-grey, not black
    empty = clf.predict(Image.new("L", (0, 0)))[0]
    assert empty.error == "image has no pixels (0x0)" and empty.label is None


def test_a_float_image_reads_alike_from_its_file_and_as_a_pil_image(tiny_run, tmp_path):
    """A float TIFF in [0, 1] was read from its file on a 0..255 scale (black) where the same image passed as a PIL
    image was scaled by 255; one in 0..255 was read from its file and refused as a PIL image."""
    from PIL import Image

    clf = imgclf.load(tiny_run)
    values = np.random.default_rng(1).random((16, 16)).astype(np.float32)
    for name, pixels in (("unit.tif", values), ("bytes.tif", values * 255)):
        Image.fromarray(pixels).save(tmp_path / name)
        from_file, from_pil = clf.predict([str(tmp_path / name), Image.open(tmp_path / name)])
        assert from_file.error is None and from_pil.error is None, (name, from_file.error, from_pil.error)
        assert from_file.probability == from_pil.probability and from_file.top == from_pil.top, name
    as_uint8 = clf.predict(np.rint(values * 255).astype(np.uint8))[0]
    assert clf.predict([str(tmp_path / "unit.tif")])[0].probability == as_uint8.probability
    # NaN or negative pixels are no image this reads (a NaN made the whole image black), whichever way it comes
    for name, bad in (("nan.tif", np.where(values > 0.5, np.nan, values)), ("negative.tif", values * 2 - 1)):
        Image.fromarray(bad.astype(np.float32)).save(tmp_path / name)
        from_file, from_pil = clf.predict([str(tmp_path / name), Image.open(tmp_path / name)])
        assert "NaN, infinity or values below -0.1" in from_file.error and from_pil.error == from_file.error, name


def test_an_image_opened_from_a_file_reads_as_its_path(tiny_run, tmp_path, monkeypatch):
    """Image.open(path) given to predict skipped libjpeg's scaling (pixels up to 8 apart, other probabilities) and
    the pixel limit (a 100-Mpixel PNG refused by path was decoded in full); the caller's image is left unread."""
    import warnings

    from torture import _bomb_png

    clf = imgclf.load(tiny_run)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (480, 800, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg", quality=85)
    opened = Image.open(tmp_path / "photo.jpg")
    by_path, by_image = clf.predict([str(tmp_path / "photo.jpg"), opened])
    assert by_image.probability == by_path.probability and by_image.score == by_path.score
    assert opened.size == (800, 480) and opened.tile  # not drafted nor read: the caller's as it was
    (tmp_path / "bomb.png").write_bytes(_bomb_png(10_000, 10_000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        bomb = Image.open(tmp_path / "bomb.png")
    by_path, by_image = clf.predict([str(tmp_path / "bomb.png"), bomb])
    assert by_path.error.startswith("decompression bomb refused") and by_image.error == by_path.error
    loaded = Image.open(tmp_path / "photo.jpg")
    loaded.load()  # read in full by the caller: predicted as given
    assert clf.predict(loaded)[0].error is None
    # opened by a relative name, then the working folder changed: the image given, not another file of that name
    for folder, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (40, 40), colour).save(tmp_path / folder / "x.png")
    monkeypatch.chdir(tmp_path / "a")
    red = Image.open("x.png")
    monkeypatch.chdir(tmp_path / "b")
    assert np.array_equal(clf.decode(red), clf.decode(np.full((40, 40, 3), (255, 0, 0), np.uint8)))


def test_a_prediction_as_a_dict_is_what_predict_json_gives(tiny_run, image_folder):
    from imgclf.predict_format import format_predictions

    prediction = imgclf.load(tiny_run).predict([str(next((image_folder / "cat").iterdir()))])[0]
    assert json.loads(json.dumps(prediction.as_dict())) == json.loads(format_predictions([prediction], "json"))[0]
    assert prediction.as_dict()["top"][0] == {"label": prediction.top[0][0], "probability": prediction.top[0][1]}


def test_evaluate_takes_progress_as_fit_does(tiny_run, tmp_path, monkeypatch):
    """Its timing line ("evaluating on ... in 2.7 s") could not be silenced from Python."""
    import contextlib
    import shutil

    from imgclf.errors import ImgclfError
    from imgclf.evaluation import run_eval

    run = shutil.copytree(tiny_run, tmp_path / "run")  # evaluate rewrites the run's own scores
    asked = []

    @contextlib.contextmanager
    def recorded(what, total, enabled=True):
        asked.append(enabled)
        yield type("Bar", (), {"advance": lambda self, n=1: None, "update": lambda self, *a, **k: None})()

    monkeypatch.setattr(run_eval, "StepProgress", recorded)
    imgclf.evaluate(run, progress=False)
    imgclf.evaluate(run)
    assert asked == [False, True]
    with pytest.raises(ImgclfError, match=r"progress must be one of \{False, True\}. Received: progress='no'"):
        imgclf.evaluate(run, progress="no")


def test_a_16_bit_image_is_read_on_the_16_bit_scale_whatever_its_brightest_pixel(tmp_path):
    """Read by its own maximum, two 16-bit files 1/65535 apart decoded one bright (max 255: kept as 0..255) and one
    black (max 256: scaled by 255/65535); a dark 16-bit photo decoded bright."""
    from PIL import Image

    from imgclf.data.decode import open_image

    ramp = np.tile(np.arange(0, 250, 250 / 16), (16, 1)).astype(np.uint16)
    for name, pixels in (("max255.png", ramp + 5), ("max256.png", ramp + 6), ("bright.png", ramp * 257)):
        Image.fromarray(pixels).save(tmp_path / name)
        with Image.open(tmp_path / name) as img:
            assert img.mode.startswith("I;16"), img.mode
    dim, dimmer = open_image(tmp_path / "max255.png", 16, "grayscale"), open_image(tmp_path / "max256.png", 16,
                                                                                    "grayscale")
    assert dim.max() <= 1 and dimmer.max() <= 1  # 255 of 65535: black, as a viewer shows it, both alike
    expected = np.rint(ramp.astype(np.float64)).astype(np.uint8)[..., None]
    assert np.abs(open_image(tmp_path / "bright.png", 16, "grayscale").astype(int) - expected).max() <= 1
    # so too a PGM deeper than 8 bits, which Pillow opens as 32-bit 'I' (scaled to 0..65535), not as 16-bit
    for name, maxval, pixels in (("max255.pgm", 65535, ramp + 5), ("max256.pgm", 65535, ramp + 6),
                                 ("twelve_bit.pgm", 4095, np.rint((ramp + 5) * (4095 / 65535)))):
        (tmp_path / name).write_bytes(f"P5 16 16 {maxval}\n".encode() + pixels.astype(">u2").tobytes())
        with Image.open(tmp_path / name) as img:
            assert img.mode == "I", img.mode
        assert open_image(tmp_path / name, 16, "grayscale").max() <= 1, name
    # and a TIFF of 32-bit integers (as Pillow opens a signed 16-bit one): one pixel from 255 to 256 turned a white
    # file black; on the 16-bit scale both are black. An 'I' image made in memory keeps 0..255 as 8-bit, as an
    # integer array does (no file says its depth)
    for name, top in (("max255.tif", 255), ("max256.tif", 256)):
        pixels = np.full((16, 16), 255, np.int32)
        pixels[0, 0] = top
        Image.fromarray(pixels).save(tmp_path / name)
        with Image.open(tmp_path / name) as img:
            assert img.mode == "I", img.mode
        assert open_image(tmp_path / name, 16, "grayscale").max() <= 1, name
    from imgclf.data.decode import as_stored, image_to_array

    made = as_stored(Image.fromarray(np.full((16, 16), 200, np.int32)))
    assert image_to_array(made, 16, "grayscale").min() == 200


def test_a_16_bit_pgm_read_by_the_caller_is_decoded_as_its_file(tiny_run, tmp_path):
    """A loaded PIL image goes through the classifier's own conversion, not the file's: it too must take Pillow's
    32-bit 'I' of a deep PGM as the 16-bit image it is."""
    from PIL import Image

    import imgclf

    ramp = np.tile(np.arange(0, 250, 250 / 16), (16, 1)).astype(np.uint16) + 5
    path = tmp_path / "dim.pgm"
    path.write_bytes(b"P5 16 16 65535\n" + ramp.astype(">u2").tobytes())
    clf = imgclf.load(tiny_run)
    with Image.open(path) as img:
        img.load()  # read: decoded by the classifier, not opened again from its file
        assert img.mode == "I"
        assert (clf.decode(img) == clf.decode(str(path))).all()
        assert clf.decode(img).max() <= 1


def test_an_empty_folder_among_the_images_is_warned_of(tiny_run, image_folder, tmp_path, caplog):
    """predict(empty_folder) returned [] without a word, where the command line refuses it."""
    import logging

    (tmp_path / "empty").mkdir()
    clf = imgclf.load(tiny_run)
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        assert clf.predict(tmp_path / "empty") == []
        assert len(clf.predict([tmp_path / "empty", image_folder / "cat"])) == 20
    assert caplog.text.count(f"the folder {str(tmp_path / 'empty')!r} holds no image file (.jpg, .jpeg, .png") == 2
    # the command line says it too, once, beside the other folder's 20 rows
    from typer.testing import CliRunner

    from imgclf.cli import app

    result = CliRunner().invoke(app, ["predict", str(tiny_run), str(tmp_path / "empty"), str(image_folder / "cat"),
                                      "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert " ".join(result.output.split()).count("holds no image file") == 1
    assert sum(line.startswith(str(image_folder)) for line in result.output.splitlines()) == 20


def test_files_left_out_of_a_folder_are_named(tiny_run, image_folder, tmp_path, caplog):
    """predict(folder) left out files not named as images without a word (training lists them as skipped); a
    .jfif, a JPEG Pillow reads, was among them."""
    import logging
    import shutil

    folder = shutil.copytree(image_folder / "cat", tmp_path / "cat")
    (folder / "notes.txt").write_text("x")
    (folder / "clip.avi").write_bytes(b"x")
    Image.open(next(folder.glob("*.png"))).convert("RGB").save(folder / "photo.jfif", "JPEG")
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        predictions = imgclf.load(tiny_run).predict(folder)
    assert len(predictions) == 21 and any(p.path.endswith("photo.jfif") and p.error is None for p in predictions)
    assert ("2 files in the folders given left out, not named as images or named in other bytes than UTF-8 "
            "('clip.avi', 'notes.txt')") in caplog.text
    from typer.testing import CliRunner

    from imgclf.cli import app

    result = CliRunner().invoke(app, ["predict", str(tiny_run), str(folder), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert " ".join(result.output.split()).count("2 files in the folders given left out") == 1


def test_a_folder_that_cannot_be_listed_is_named(tiny_run, image_folder, tmp_path, caplog, monkeypatch):
    """A sub-folder the system would not list (a permission, a drive gone) was left out of predict(folder)
    without a word: its images were simply not among the rows. A link back to a folder already read loses
    nothing and is not named."""
    import logging
    import os
    import shutil

    folder = shutil.copytree(image_folder / "cat", tmp_path / "cat")
    shutil.copytree(image_folder / "dog", folder / "locked")
    (folder / "again").symlink_to(folder, target_is_directory=True)
    scandir = os.scandir

    def refusing(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        assert len(imgclf.load(tiny_run).predict(folder)) == 20
    said = " ".join(caplog.text.split())
    assert (f"1 entry in the folders given could not be read, so any images in it are left out: "
            f"{folder / 'locked'}{os.sep} (cannot list folder: Permission denied)") in said, said
    assert "again" not in said
    from typer.testing import CliRunner

    from imgclf.cli import app

    result = CliRunner().invoke(app, ["predict", str(tiny_run), str(folder), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert " ".join(result.output.split()).count("1 entry in the folders given could not be read") == 1
    # the folder given itself: not "holds no image file" (API) nor a bare "no image found" (command line)
    locked = folder / "locked"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        assert imgclf.load(tiny_run).predict(locked) == []
    assert "holds no image file" not in caplog.text and "cannot list folder: Permission denied" in caplog.text
    result = CliRunner().invoke(app, ["predict", str(tiny_run), str(locked)], env={"COLUMNS": "250"})
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "(no image found; could not be read: " in said and \
        "(cannot list folder: Permission denied)" in said, said


def test_evaluate_prints_a_folder_and_split_as_written(tiny_run, tmp_path):
    """Rich read ":train:" in "DATA:train: accuracy" as an emoji (a train), and "[red]" in a name as markup."""
    import shutil

    from typer.testing import CliRunner

    from conftest import make_image_folder
    from imgclf.cli import app

    run = shutil.copytree(tiny_run, tmp_path / "run")  # evaluate --data writes evaluations/ into it
    data = make_image_folder(tmp_path / "e[red]x", layout="splits", per_split={"train": 4, "test": 2})
    result = CliRunner().invoke(app, ["evaluate", str(run), "--data", str(data), "--split", "train"],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert f"{data}:train: accuracy" in result.output


def test_a_broken_symlink_is_named_as_one(tiny_run, tmp_path):
    """ls lists a link whose target is gone, so "file not found" (predict) read as a typo; train named it."""
    from typer.testing import CliRunner

    from imgclf.cli import app

    link = tmp_path / "photo.png"
    link.symlink_to(tmp_path / "gone.png")
    [row] = imgclf.load(tiny_run).predict([str(link)])
    assert row.error == "broken symlink (its target is gone)"
    result = CliRunner().invoke(app, ["predict", str(tiny_run), str(link)])
    assert result.exit_code == 2 and "(broken symlink (its target is gone))" in result.output, result.output


def test_a_named_pipe_given_by_name_is_an_error_entry_not_a_wait(tiny_run, tmp_path):
    """`mkfifo x.png; imgclf predict RUN x.png` waited for a writer for ever."""
    import os
    import threading

    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    rows = []
    worker = threading.Thread(target=lambda: rows.extend(imgclf.load(tiny_run).predict([str(fifo)])), daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():  # a reader waits: a writer that opens and closes at once lets it go, and the test fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        pytest.fail("predict waited on the named pipe")
    assert rows[0].error == "not a regular file (a named pipe)"


def test_terminal_tables_keep_long_class_names_whole(tmp_path, monkeypatch):
    """On an 80-column terminal the class column cut every 'a_very_long_..._0K_variant' to the same
    'a_very_long_…', so the rows could not be told apart: the names now fold onto further lines, whole."""
    from typer.testing import CliRunner

    from conftest import make_image_folder
    from imgclf.cli import app

    names = [f"a_very_long_descriptive_category_name_for_product_type_with_more_words_0{i}_variant" for i in range(3)]
    data = make_image_folder(tmp_path / "data", classes=names, per_class=10)
    run = imgclf.fit({"data": str(data), "model": "simple_cnn", "img_size": 16, "epochs": 1, "progress": False,
                      "out": str(tmp_path / "run")}, report=False)
    monkeypatch.setenv("COLUMNS", "80")
    for command in (["evaluate", str(run.path)], ["inspect", str(data)]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 0, result.output
        rows, current = [], None
        for line in result.stdout.splitlines():
            cells = [c.strip() for c in line.split("│")[1:-1]]
            if len(cells) < 2:
                continue
            if cells[1]:  # a row's first line carries its numbers; a folded name continues on lines without
                current = [cells[0]]
                rows.append(current)
            elif current is not None:
                current.append(cells[0])
        assert set(names) <= {"".join(row) for row in rows}, result.stdout


def test_evaluating_the_runs_own_split_again_refreshes_its_report_and_says_what_it_dropped(tiny_run, tmp_path,
                                                                                         caplog):
    """`imgclf evaluate RUN` rewrote metrics.json without the TTA block the training's evaluation had made, and
    the report.html beside it went on showing 'with TTA ...' until `imgclf report` dropped it silently."""
    import logging
    import shutil

    run = shutil.copytree(tiny_run, tmp_path / "run")
    imgclf.evaluate(run, tta=True, progress=False)
    assert "with TTA" in (run / "report.html").read_text()
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        imgclf.evaluate(run, tta=False, progress=False)
    assert RunDir(run).read_metrics().tta is None
    assert "with TTA" not in (run / "report.html").read_text()  # the page shows what metrics.json now holds
    assert any("test-time augmentation scores" in r.getMessage() and "--tta (Python: tta=True)" in r.getMessage()
               for r in caplog.records)
    # model.json's headline (GET /model, imgclf runs) follows the evaluation that replaced metrics.json (it kept
    # the earlier one's: here a loss no evaluation gives)
    card = RunDir(run).read_card()
    card.metrics.loss = 123.0
    RunDir(run).write_card(card)
    imgclf.evaluate(run, precision="32", progress=False)
    metrics, card = RunDir(run).read_metrics(), RunDir(run).read_card()
    assert metrics.precision == "32"
    assert (card.metrics.loss, card.metrics.macro_f1) == (metrics.loss, metrics.macro.f1)


def test_sixteen_bit_pixels_map_as_rint_of_their_share_of_65535_without_a_float_copy():
    """The block-wise integer mapping (a float64 copy of a 9400 x 9400 PNG took 2.4 GB and 14 s) gives every one of
    the 65,536 values what rint(v * 255 / 65535) gives."""
    from imgclf.data.decode import _sixteen_to_eight

    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    expected = np.rint(values.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    assert (_sixteen_to_eight(values, rows=7) == expected).all()


def test_a_network_left_in_train_mode_predicts_as_in_eval_mode_and_is_left_as_it_was(tiny_run, image_folder):
    """Loaded to train further (fold_batch_norm=False) and left in train mode, the network predicted with each
    batch's own BatchNorm statistics, answers that changed with the batch's other images, and every call moved
    its running statistics. Its class list is a copy: sorting it relabelled every later prediction."""
    from pathlib import Path

    import torch

    files = sorted(str(p) for p in Path(image_folder).rglob("*.png"))[:6]
    clf = imgclf.load(tiny_run, fold_batch_norm=False)
    expected = [(p.label, p.probability) for p in clf.predict(files)]
    clf.model.train()
    stats = {k: v.clone() for k, v in clf.model.state_dict().items() if "running" in k}
    assert stats, "the tiny run's network should have BatchNorm layers"
    assert [(p.label, p.probability) for p in clf.predict(files)] == expected
    assert [(p.label, p.probability) for p in clf.predict(files[:1])] == expected[:1]
    assert all(torch.equal(v, clf.model.state_dict()[k]) for k, v in stats.items())
    assert clf.model.training  # put back as the caller left it
    frozen = [m for m in clf.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in frozen:
        m.eval()  # a fine-tuning's frozen BatchNorm (--freeze-bn) in a model that trains
    clf.predict(files[:1])
    assert clf.model.training and not any(m.training for m in frozen)
    clf.classes.reverse()
    assert [p.label for p in clf.predict(files)] == [label for label, _ in expected]


def test_torch_tensors_in_torchvisions_layout_predict_as_the_same_array(tiny_run, image_folder):
    """A C x H x W tensor (or a DataLoader's N x C x H x W batch) was refused, and the hint's
    tensor.permute(1, 2, 0).cpu().numpy() raised on a batch and on a tensor that needs its gradient."""
    clf = imgclf.load(tiny_run)
    batch = torch.rand(3, 3, 16, 16, requires_grad=True)
    expected = clf.predict(batch.detach().permute(0, 2, 3, 1).numpy())
    got = clf.predict(batch)
    assert [p.path for p in got] == ["images[0]", "images[1]", "images[2]"]
    assert [(p.label, p.probability) for p in got] == [(p.label, p.probability) for p in expected]
    one = clf.predict([batch[1], (batch[1] * 255).round().to(torch.uint8)])
    assert one[0].probability == expected[1].probability and one[0].path == "images[0]"
    assert one[1].label == expected[1].label
    assert clf.predict(batch[0].to(torch.bfloat16))[0].label is not None  # numpy has no bfloat16


def test_a_resized_tensors_overshoot_of_one_is_read_clipped_as_a_float_files_is(tiny_run):
    """A bicubic, antialiased Resize leaves values up to about 1.01: refused whole, with "divide by 255"."""
    clf = imgclf.load(tiny_run)
    pixels = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 1.16 - 0.08  # both sides
    got, clipped = clf.predict(pixels), clf.predict(pixels.clamp(0, 1))
    assert [(p.label, p.probability) for p in got] == [(p.label, p.probability) for p in clipped]
    with pytest.raises(ImgclfError, match=r"values from .* to 1\.2"):
        clf.predict(torch.full((3, 16, 16), 1.2))


def test_three_grey_images_as_one_tensor_are_not_read_as_one_colour_image(tmp_path):
    """torchvision's MNIST(...).data[:3] is a 3 x H x W tensor of 3 grey images: a grey run read it as one colour
    image and gave 1 answer for 3 images. For a grey run, which it is cannot be told: refused, saying how to say."""
    data = make_image_folder(tmp_path / "grey", classes=("a", "b"), per_class=6, mode="L")
    run = imgclf.fit(data=str(data), out=str(tmp_path / "run"), img_size=16, epochs=1, batch_size=4,
                     model_args={"width": 4}, progress=False, report=False)
    clf = imgclf.load(run.path)
    grey = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for given in (grey, [grey]):
        with pytest.raises(ImgclfError, match=r"shape 3x16x16 \(3 or 4 grey images \(N x H x W\), or one colour "
                                              r"image .*tensor\.unsqueeze\(1\)"):
            clf.predict(given)
    assert len(clf.predict(grey.unsqueeze(1))) == 3
    assert len(clf.predict(grey.unsqueeze(0))) == 1  # one colour image, read grey as its file would be
    with pytest.raises(ImgclfError, match=r"3x16x16 \(3 or 4 grey images"):
        imgclf.explain(clf, grey)


def test_a_network_in_train_mode_stays_in_eval_mode_while_any_thread_predicts():
    """Two threads predicting with a network left in train mode: the first to finish put train mode back while
    the other's forward pass ran, which then used its batch's own BatchNorm statistics (probabilities 0.25 off)."""
    import threading

    from imgclf.eval_mode import evaluating

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    model.train()
    inside, release = threading.Event(), threading.Event()

    def predicting():
        with evaluating(model):
            inside.set()
            release.wait(60)

    other = threading.Thread(target=predicting)
    with evaluating(model):
        other.start()
        assert inside.wait(60)
    assert not model.training  # the other thread still predicts
    release.set()
    other.join(60)
    assert model.training and all(m.training for m in model.modules())  # the last one out puts the modes back


def test_the_cli_keeps_each_path_as_it_was_given_as_the_api_does(tiny_run, image_folder, monkeypatch):
    """Taken as Paths, "./cat/x.png" came back as "cat/x.png" and "cat//x.png" as "cat/x.png": rows that a script
    could not match to the paths it passed, where the API keeps them."""
    from typer.testing import CliRunner

    from imgclf.cli import app

    monkeypatch.chdir(image_folder)
    name = sorted(p.name for p in (image_folder / "cat").iterdir())[0]
    given = [f"./cat/{name}", f"cat//{name}"]
    result = CliRunner().invoke(app, ["predict", str(tiny_run), *given, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["path"] for r in rows] == given == [p.path for p in imgclf.load(tiny_run).predict(given)]


def test_a_folder_evaluation_skipped_is_counted_as_a_folder(tiny_run, image_folder, tmp_path):
    """A symlink loop and a broken file: '7 files skipped' where the scan had said '6 files and 1 folder'; the
    absolute path had lost the separator that marks a folder."""
    import os
    import shutil

    from typer.testing import CliRunner

    from imgclf.cli import app

    run = shutil.copytree(tiny_run, tmp_path / "run")
    data = shutil.copytree(image_folder, tmp_path / "d")
    first = sorted(os.listdir(data))[0]
    os.symlink(data / first, data / first / "loop")
    (data / first / "cut.png").write_bytes(b"\x89PNG\r\n")
    metrics = imgclf.evaluate(run, data=str(data), progress=False)
    paths = [s.path for s in metrics.skipped]
    assert sum(p.endswith(os.sep) for p in paths) == 1 and len(paths) == 2, paths
    result = CliRunner().invoke(app, ["evaluate", str(run), "--data", str(data)], env={"COLUMNS": "300"})
    assert "1 file and 1 folder skipped" in result.output, result.output


def test_predict_leaves_the_callers_warning_filters_as_they_were(tiny_run, tmp_path, monkeypatch):
    """Each image was opened inside `warnings.catch_warnings()`, which swaps the process's one filter list:
    predict's decode pool (64 images and more) left Pillow's warnings silenced for good, and a caller's own
    hardening (DecompressionBombWarning made an error) was switched off. A library leaves the filters alone; the
    command line, whose process is imgclf's, silences Pillow there."""
    import warnings

    folder = make_image_folder(tmp_path / "many", classes=("a", "b"), per_class=40, size=12)
    paths = sorted(str(p) for p in folder.rglob("*.png"))
    clf = imgclf.load(tiny_run)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        hardened = list(warnings.filters)
        assert all(p.error is None for p in clf.predict(paths))
        assert warnings.filters == hardened
        # under that hardening, an image over Pillow's limit is still refused as imgclf refuses it, by its size
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)
        Image.new("RGB", (15, 15)).save(tmp_path / "large.png")
        assert clf.predict(str(tmp_path / "large.png"))[0].error.startswith("decompression bomb refused: 225 pixels")


def test_the_command_line_silences_pillows_warnings_in_its_own_process(tmp_path):
    import subprocess
    import sys

    code = ("import warnings, sys; from typer.testing import CliRunner; from imgclf.cli import app; "
            "CliRunner().invoke(app, ['--version']); CliRunner().invoke(app, ['runs', sys.argv[1]]); "
            "print(any(f[0] == 'ignore' and f[3] is not None and f[3].pattern == r'PIL\\.' for f in warnings.filters))")
    said = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert said.stdout.strip() == "True", said.stderr


def test_a_loaded_classifier_whose_folder_now_holds_other_weights_is_refused_not_mixed(tiny_run, tmp_path):
    """`imgclf.evaluate(clf)` on a folder since replaced by another run scored the other weights, then put that
    run's card and unknown detector on the loaded network: 34 of 36 labels changed, every image unknown, no
    error."""
    import shutil

    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    clf = imgclf.load(run)
    weights = load_file(run / "model.safetensors")
    save_file({k: v + 0.5 if v.is_floating_point() else v for k, v in weights.items()}, run / "model.safetensors")
    folder = RunDir(run)
    folder.write_card(folder.read_card())  # as another run's training writes it: its own digests
    for call in (lambda: imgclf.evaluate(clf, progress=False), lambda: clf.reload_card()):
        with pytest.raises(ImgclfError, match=r"^run_dir must be the run folder this classifier was loaded from, "
                                              r"describing its weights.*Load it again"):
            call()
    assert clf.card.file_sha256["model.safetensors"] != folder.read_card().file_sha256["model.safetensors"]
    again = imgclf.load(clf)  # as the refusal advises: the folder's weights as they are now
    assert again.card.file_sha256 == folder.read_card().file_sha256


def _predict_in_child(clf, path, answers):
    import faulthandler

    faulthandler.dump_traceback_later(60, exit=True)  # a hang ends the child, which the parent then reads
    answers.put(clf.predict(path)[0].probability)


def test_a_process_forked_after_the_load_predicts(tiny_run, tmp_path):
    """gunicorn --preload and multiprocessing's fork: loading alone starts the parent's OpenMP pool, which the
    child does not have, and the child's first prediction waited for it for ever."""
    import multiprocessing as mp

    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a pool to inherit, as on any machine of several cores
    try:
        clf = imgclf.load(tiny_run)
        Image.new("RGB", (16, 16), (200, 40, 40)).save(tmp_path / "x.png")
        expected = clf.predict(str(tmp_path / "x.png"))[0].probability
        context = mp.get_context("fork")
        answers = context.Queue()
        child = context.Process(target=_predict_in_child, args=(clf, str(tmp_path / "x.png"), answers))
        child.start()
        child.join(90)
        assert child.exitcode == 0, f"the forked child's prediction ended with {child.exitcode}"
        assert answers.get(timeout=5) == pytest.approx(expected, abs=1e-6)
        assert torch.get_num_threads() == 2  # the parent keeps its own
    finally:
        torch.set_num_threads(threads)
