"""`imgclf serve --backend onnx` answers what `--backend torch` answers: the same JSON for the same uploads
(labels, unknown decisions, calibrated probabilities within 1e-4), and refuses an export it cannot trust."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from imgclf.errors import ImgclfError
from imgclf.export import export_run, load_onnx
from imgclf.inference import Classifier
from imgclf.io import read_json, write_json
from imgclf.serve import create_app

MAX_FILES = 8


def _test_files(run: Path) -> list[Path]:
    dataset = read_json(run / "dataset.json")
    return [Path(dataset["root"]) / f for f in dataset["splits"]["test"]["files"]]


def _noise_pngs(count: int, size: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(count):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
        out.append((f"noise-{i}.png", buf.getvalue()))
    return out


@pytest.fixture(scope="module")
def uploads(tiny_run) -> list[tuple[str, bytes]]:
    """The run's test split plus uniform noise (images like no class), and one file that is not an image."""
    files = [(f.name, f.read_bytes()) for f in _test_files(tiny_run)]
    return files + _noise_pngs(6, 16) + [("notes.png", b"not pixels")]


@pytest.fixture(scope="module")
def run(tiny_run, uploads, tmp_path_factory) -> Path:
    """A copy of the tiny run with a temperature and a threshold at the median score of `uploads`, so that
    calibration changes the probabilities and both unknown decisions occur; exported to ONNX."""
    copy = Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("backends") / "run"))
    card = read_json(copy / "model.json")
    card["calibration"] = {"method": "temperature", "temperature": 1.7}
    write_json(copy / "model.json", card)
    clf = Classifier.load(copy, precision="32")
    pixels = np.stack([clf.decode(io.BytesIO(data)) for _, data in uploads[:-1]])
    card["unknown"]["threshold"] = float(np.median(clf.infer_pixels(pixels).scores))
    write_json(copy / "model.json", card)
    export_run(copy, "onnx")
    return copy


def _answers(app, uploads, query: str = "") -> list[dict]:
    out = []
    with TestClient(app) as client:
        for start in range(0, len(uploads), MAX_FILES):
            parts = [("files", (name, data, "image/png")) for name, data in uploads[start:start + MAX_FILES]]
            r = client.post(f"/predict{query}", files=parts)
            assert r.status_code == 200, r.text
            out += r.json()["predictions"]
    return out


@pytest.mark.parametrize("query", ["?top_k=3", "?top_k=1&unknown=off"])
def test_both_backends_give_the_same_json_for_the_same_uploads(run, uploads, query):
    # the graph runs in fp32: so does the torch side here (bf16 against fp32: tests/test_inference_precision.py)
    answers = {backend: _answers(create_app(run, backend=backend, threads=1, max_files=MAX_FILES,
                                            precision="32" if backend == "torch" else "auto"), uploads, query)
               for backend in ("torch", "onnx")}
    torch_json, onnx_json = answers["torch"], answers["onnx"]
    assert len(torch_json) == len(onnx_json) == len(uploads)
    for t, o in zip(torch_json, onnx_json):
        assert set(t) == set(o)
        for key in ("path", "label", "best_label", "unknown", "error"):
            assert t[key] == o[key], (key, t, o)
        if t["error"] is not None:
            continue
        assert o["probability"] == pytest.approx(t["probability"], abs=1e-4)
        assert o["score"] == pytest.approx(t["score"], rel=1e-4, abs=1e-3)
        assert [e["label"] for e in o["top"]] == [e["label"] for e in t["top"]]
        assert np.allclose([e["probability"] for e in o["top"]], [e["probability"] for e in t["top"]], atol=1e-4)
    flagged = [t["label"] == "unknown" for t in torch_json if t["error"] is None]
    if "unknown=off" in query:
        assert not any(flagged)
    else:
        assert 0 < sum(flagged) < len(flagged), "the threshold should make both decisions occur"
    # the temperature reached both backends: the top probability is below what the raw softmax gives
    raw = Classifier.load(run).embed_pixels(np.stack([Classifier.load(run).decode(io.BytesIO(uploads[0][1]))]))[0]
    softmax = np.exp(raw - raw.max()) / np.exp(raw - raw.max()).sum()
    assert onnx_json[0]["top"][0]["probability"] < softmax.max() - 1e-3


def test_the_model_card_served_names_no_library_version_on_either_backend(run):
    """GET /model hides where a model was trained; with --backend onnx the export block still showed the torch
    version it was exported with."""
    cards = {}
    for backend in ("torch", "onnx"):
        with TestClient(create_app(run, backend=backend, threads=1)) as client:
            cards[backend] = client.get("/model").json()
    assert "hardware" not in cards["onnx"] and "versions" not in cards["onnx"]
    assert cards["onnx"]["export"]["format"] == "onnx" and "torch" not in cards["onnx"]["export"]
    assert {k: v for k, v in cards["onnx"].items() if k != "export"} == cards["torch"]


def test_the_onnx_session_runs_one_pass_at_a_time_on_the_threads_asked(run):
    import onnxruntime as ort

    options = load_onnx(run, threads=1).session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    with TestClient(create_app(run, backend="onnx", threads=1)) as client:
        assert client.get("/health").json()["backend"] == "onnx"


def test_evaluate_and_calibrate_refuse_an_onnx_classifier_before_touching_the_run(run):
    """evaluate(load_onnx(RUN)) scored the torch weights, rewrote metrics.json, then failed on the session's
    missing torch head; calibrate rewrote model.json, then failed the same way."""
    import imgclf

    onnx = load_onnx(run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    # evaluate can score the export itself: its hint says how (backend='onnx')
    for command, args in ((imgclf.evaluate, ", backend='onnx'"), (imgclf.calibrate, "")):
        with pytest.raises(ImgclfError, match=rf"^run_dir must be a run directory, a Run or a Classifier loaded "
                                              rf"with imgclf.load\. .*imgclf.{command.__name__}\('{run}'{args}\)"):
            command(onnx)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    # loaded from the run's export by file name: the run is still the one named; a copy elsewhere has none
    with pytest.raises(ImgclfError, match=rf"Pass its run directory: imgclf.evaluate\('{run}', backend='onnx'\)"):
        imgclf.evaluate(load_onnx(run / "export" / "model.onnx"))
    alone = Path(shutil.copytree(run / "export", run.parent / "deploy"))
    with pytest.raises(ImgclfError, match=r"Pass the run directory it was exported from to imgclf.calibrate; then "):
        imgclf.calibrate(load_onnx(alone / "model.onnx"))
    with pytest.raises(ImgclfError, match=r"Pass the run directory it was exported from to imgclf.calibrate; then "):
        imgclf.calibrate(load_onnx(alone))  # the folder named, as `export --out` leaves it: no run either
    with pytest.raises(ImgclfError, match=rf"Pass its run directory: imgclf.evaluate\('{run}', backend='onnx'\)"):
        imgclf.evaluate(load_onnx(run / "export"))


def test_the_folder_export_out_wrote_is_what_predict_and_serve_take(run, uploads, tmp_path):
    """`imgclf export RUN --out DIR` wrote DIR/model.onnx, which predict, serve and load_onnx refused ("no
    export/model.onnx"), with a hint (`imgclf export DIR`) that failed in turn."""
    from typer.testing import CliRunner

    from imgclf.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "deploy")])
    assert result.exit_code == 0, result.output
    images = [str(tmp_path / name) for name, _ in uploads[:2]]
    for (_, data), path in zip(uploads, images):
        Path(path).write_bytes(data)
    expected = [(p.label, p.probability) for p in load_onnx(run).predict(images)]
    assert [(p.label, p.probability) for p in load_onnx(tmp_path / "deploy").predict(images)] == expected
    result = runner.invoke(app, ["predict", str(tmp_path / "deploy"), *images, "--backend", "onnx", "--format",
                                 "json"])
    assert result.exit_code == 0, result.output
    assert [row["label"] for row in json.loads(result.output)] == [label for label, _ in expected]
    with TestClient(create_app(tmp_path / "deploy", backend="onnx", threads=1)) as client:
        assert client.get("/health").json()["backend"] == "onnx"
    result = runner.invoke(app, ["predict", str(tmp_path / "deploy"), *images])  # the torch backend: no run there
    assert result.exit_code == 2 and ("an ONNX export, not a run: imgclf predict and imgclf serve take it with "
                                      "--backend onnx (Python: imgclf.export.load_onnx)") in \
        " ".join(result.output.split())
    # a folder holding neither says what it takes, without offering to export a folder that is no run
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["predict", str(tmp_path / "empty"), *images, "--backend", "onnx"])
    assert result.exit_code == 2 and "no model.onnx, no export/" in result.output
    assert "imgclf export" not in result.output.replace("export --out", "")


def test_a_run_without_an_export_is_refused_with_the_command_to_run(run, tmp_path):
    bare = Path(shutil.copytree(run, tmp_path / "bare", ignore=shutil.ignore_patterns("export")))
    with pytest.raises(ImgclfError) as caught:
        create_app(bare, backend="onnx")
    message = str(caught.value)
    assert "\n" not in message and "no export/model.onnx" in message
    assert f"imgclf export {bare} --format onnx" in message
    assert not (bare / "export").exists(), "a refusal must not write into the run"


def test_an_export_older_than_the_card_is_refused_and_a_new_metric_is_not(run, tmp_path, monkeypatch):
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    card = read_json(copy / "model.json")
    card["metrics"]["accuracy"] = 0.5  # what a later evaluation (tune) rewrites: the graph is unchanged
    write_json(copy / "model.json", card)
    create_app(copy, backend="onnx")
    card["calibration"]["temperature"] = 2.5  # refitted after the export: the graph would answer otherwise
    write_json(copy / "model.json", card)
    with pytest.raises(ImgclfError) as caught:
        create_app(copy, backend="onnx")
    message = str(caught.value)
    assert "\n" not in message and "changed since the export: calibration" in message
    assert f"imgclf export {copy} --format onnx" in message
    # the run's export named as a file is as stale (it was served without a word); a copy elsewhere stands alone
    with pytest.raises(ImgclfError, match="changed since the export: calibration"):
        create_app(copy / "export" / "model.onnx", backend="onnx")
    alone = tmp_path / "deploy"
    alone.mkdir()
    shutil.copy(copy / "export" / "model.onnx", alone / "model.onnx")
    create_app(alone / "model.onnx", backend="onnx")
    # named relative to the export folder itself (its parent's name was '' then), or through '..'
    monkeypatch.chdir(copy / "export")
    with pytest.raises(ImgclfError, match="changed since the export: calibration"):
        create_app("model.onnx", backend="onnx")
    with pytest.raises(ImgclfError, match="changed since the export: calibration"):
        create_app("../export/./model.onnx", backend="onnx")
    # a run named directly is checked wherever its export lies: export/ a link to another disk, or a model.onnx
    # written into the run folder itself (`export --out RUN`) beside it
    moved = Path(shutil.move(str(copy / "export"), str(tmp_path / "elsewhere")))
    (copy / "export").symlink_to(moved)
    shutil.copy(moved / "model.onnx", copy / "model.onnx")
    with pytest.raises(ImgclfError, match="changed since the export: calibration"):
        create_app(copy, backend="onnx")
    for named in (copy / "export", copy / "export" / "model.onnx"):  # the export, named through the link
        with pytest.raises(ImgclfError, match="changed since the export: calibration"):
            create_app(named, backend="onnx")
    (copy / "export").unlink()
    with pytest.raises(ImgclfError, match="changed since the export: calibration"):
        create_app(copy, backend="onnx")


def test_an_export_out_named_as_a_file_is_refused(run, tmp_path):
    """`--out deploy/model.onnx` made a folder of that name holding deploy/model.onnx/model.onnx, which nothing
    then read as a model."""
    from imgclf.export import export_run

    with pytest.raises(ImgclfError, match=r"out must be a folder \(the file written into it is named model.onnx\)"
                                          r".*Pass its folder: --out .*deploy \(writes .*deploy/model\.onnx\); a folder "
                                          r"of that name is taken once it exists \(mkdir .*deploy/model\.onnx first\)"):
        export_run(run, format="onnx", out=tmp_path / "deploy" / "model.onnx")
    assert not (tmp_path / "deploy").exists()
    # a folder of that name made by an earlier release is a folder: written into it; its own model.onnx folder
    # inside is refused by name (it was an internal error)
    (tmp_path / "old" / "model.onnx" / "model.onnx").mkdir(parents=True)
    with pytest.raises(ImgclfError, match=r"out must be a folder where model.onnx can be written.*is a folder"):
        export_run(run, format="onnx", out=tmp_path / "old" / "model.onnx")
    with pytest.raises(ImgclfError, match=r"is a folder"):
        export_run(run, format="onnx", out=tmp_path / "old")
    export_run(run, format="onnx", out=str(tmp_path / "slash" / "v1.onnx") + "/")  # a trailing slash: a folder
    assert (tmp_path / "slash" / "v1.onnx" / "model.onnx").is_file()
