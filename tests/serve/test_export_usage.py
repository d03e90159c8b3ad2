"""The page beside an exported model (`model.onnx.md`): its Pillow + onnxruntime example, run as a third party
would run it, gives the answers `imgclf predict --backend onnx` gives, on files whose decoding has traps
(transparency, EXIF orientation, JPEG scaled while decoded, a palette, grey)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from export_pages import page_example, run_page_example
from PIL import Image

from imgclf.export import export_run, load_onnx


def tricky_images(folder: Path) -> list[str]:
    """Files that a plain `Image.open(p).convert("RGB").resize(...)` decodes otherwise than imgclf."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    base[10:30, 20:50] = (220, 40, 30)
    rgba = np.dstack([base, np.where(np.arange(64) < 32, 255, 60).astype(np.uint8)[None].repeat(48, 0)])
    Image.fromarray(rgba, "RGBA").save(folder / "half_transparent.png")
    Image.fromarray(base).save(folder / "photo.jpg", quality=90)  # 64 px wide: libjpeg decodes it at 1/2 or 1/4
    # a JPEG with an embedded preview, which Pillow opens as "MPO": scaled by libjpeg too
    Image.fromarray(base[:, ::-1]).save(folder / "with_preview.jpg", format="MPO", save_all=True, quality=90,
                                        append_images=[Image.fromarray(base[:16, :16])])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    Image.fromarray(base).save(folder / "rotated.jpg", quality=90, exif=exif)
    palette = Image.fromarray(base).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 3
    palette.save(folder / "palette.png", transparency=3)
    Image.fromarray(base).convert("L").save(folder / "grey.png")
    # colour keys (PNG tRNS, as optimisers write RGBA whose alpha is all or nothing): that value is transparent
    Image.fromarray(base).save(folder / "rgb_keyed.png", transparency=tuple(int(v) for v in base[0, 0]))
    Image.fromarray(base[:, :, 0]).save(folder / "grey_keyed.png", transparency=int(base[0, 0, 0]))
    Image.fromarray(base[:, :, 0].astype(np.uint16) * 200).save(folder / "sixteen_keyed.png",
                                                                 transparency=int(base[0, 0, 0]) * 200)
    Image.fromarray(base).convert("LAB").save(folder / "lab.tif")  # LAB to L has no direct conversion
    from torture import keyed_png  # bit depths Pillow does not write: 4-bit grey and 16-bit RGB, keyed

    (folder / "grey4_keyed.png").write_bytes(keyed_png(8, 4, 0, bytes([0x10, 0x3F, 0x1F, 0xA1]), (1,)))
    # the second pixel's high bytes are the key's low bytes: Pillow's comparison would erase it
    (folder / "rgb16_keyed.png").write_bytes(keyed_png(2, 16, 2, struct.pack(">6H", 1, 0x0203, 0x0405, 0x0155,
                                                                             0x0366, 0x0577), (1, 0x0203, 0x0405)))
    Image.fromarray(base).convert("LA").save(folder / "grey_alpha.png")
    deep = (base[:, :, 0].astype(np.uint16) * 200).astype(np.uint16)  # 16-bit, up to 51,000: scaled, not clipped
    Image.fromarray(deep).save(folder / "sixteen_bit.png")
    assert Image.open(folder / "sixteen_bit.png").mode.startswith("I")
    # a dim 16-bit file (its brightest 127 of 65535) is on the same scale: near black, not read as 0..255
    Image.fromarray((base[:, :, 0] // 2).astype(np.uint16)).save(folder / "sixteen_bit_dim.png")
    Image.fromarray(base[:, :, 1].astype(np.float32) / 255).save(folder / "float_unit.tif")  # 'F' in [0, 1]: x 255
    assert Image.open(folder / "float_unit.tif").mode == "F"
    overshoot = base[:, :, 2].astype(np.float32) / 255
    overshoot[0, 0] = 1.0004  # resampled: a hair over 1, still [0, 1] (read as 0..255 it was black)
    Image.fromarray(overshoot).save(folder / "float_overshoot.tif")
    ringing = overshoot.copy()
    ringing[1, 1] = -0.004  # a bicubic resize's undershoot: clipped, as an array's is
    Image.fromarray(ringing).save(folder / "float_ringing.tif")
    # a 16-bit PGM, dim (its brightest 200 of 65535): Pillow opens it as 32-bit "I", which read as 0..255
    (folder / "deep_dim.pgm").write_bytes(b"P5 64 48 65535\n" + (base[:, :, 1].astype(np.uint16) * 200 // 255).astype(">u2").tobytes())
    # 32-bit integers within 0..255 in a TIFF: on the 16-bit scale, as a deep PGM (read by its own maximum, one
    # pixel of 256 turned it from white to black)
    Image.fromarray(base[:, :, 1].astype(np.int32)).save(folder / "int32_dim.tif")
    (folder / "grey_premultiplied.tif").write_bytes(premultiplied_grey_tiff(base[:, :, 2]))
    return sorted(str(p) for p in folder.iterdir())


def premultiplied_grey_tiff(grey: np.ndarray) -> bytes:
    """A grey TIFF whose alpha is premultiplied (ExtraSamples 1), which Pillow opens as 'La': no direct
    conversion to RGBA."""
    import io

    buffer = io.BytesIO()
    alpha = np.where(np.arange(grey.shape[1]) < grey.shape[1] // 2, 255, 90).astype(np.uint8)
    Image.merge("LA", (Image.fromarray(grey), Image.fromarray(np.broadcast_to(alpha, grey.shape).copy()))).save(
        buffer, format="TIFF")
    straight = struct.pack("<HHIH", 338, 3, 1, 2)  # ExtraSamples, SHORT, 1 value: 2, unassociated alpha
    assert buffer.getvalue().count(straight) == 1
    data = buffer.getvalue().replace(straight, struct.pack("<HHIH", 338, 3, 1, 1))
    assert Image.open(io.BytesIO(data)).mode == "La"
    return data


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    run = Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("usage") / "run"))
    return run, export_run(run, "onnx")


def test_the_onnx_page_example_answers_as_imgclf_does(exported, tmp_path, monkeypatch):
    run, model = exported
    page = model.with_name("model.onnx.md")
    text = page.read_text()
    assert "uint8, shape (N, 16, 16, 3)" in text and "| 0 | cat |" in text and "resized to 16 x 16" in text
    card = load_onnx(run).card
    assert f"score < {float(card.unknown.threshold)!r}" in text and "onnxruntime 1.20 or later" in text
    assert "`imgclf predict RUN IMAGES --precision 32` gives its answers" in text
    paths = tricky_images(tmp_path / "images")
    theirs = run_page_example(page, paths, monkeypatch)
    ours = load_onnx(run).predict(paths)
    assert [p.error for p in ours] == [None] * len(paths)
    assert [t[0] for t in theirs] == [p.label for p in ours]
    assert [t[1] for t in theirs] == [p.best_label for p in ours]
    assert np.allclose([t[2] for t in theirs], [p.probability for p in ours], atol=1e-6)
    assert np.allclose([t[3] for t in theirs], [p.score for p in ours], rtol=1e-6)


def test_the_example_of_a_grey_run_answers_as_imgclf_does(image_folder, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import imgclf

    run = imgclf.fit(data=str(image_folder), out=str(tmp_path / "grey"), color="grayscale", img_size=16, epochs=1,
                     progress=False, report=False, seed=0)
    model = export_run(run.path, "onnx")
    assert "uint8, shape (N, 16, 16, 1)" in model.with_name("model.onnx.md").read_text()
    paths = tricky_images(tmp_path / "images")
    theirs = run_page_example(model.with_name("model.onnx.md"), paths, monkeypatch)
    ours = load_onnx(run.path).predict(paths)
    assert [p.error for p in ours] == [None] * len(paths)
    assert [t[1] for t in theirs] == [p.best_label for p in ours]
    assert np.allclose([t[3] for t in theirs], [p.score for p in ours], rtol=1e-6)


def test_the_page_example_fails_when_imgclf_decodes_otherwise(exported, tmp_path, monkeypatch):
    """The comparison above can tell decodings apart: the example with transparency over black, 16-bit or float
    pixels clipped, without the EXIF turn or without libjpeg's scaling gives other scores on these files."""
    _, model = exported
    paths = tricky_images(tmp_path / "images")
    right = run_page_example(model.with_name("model.onnx.md"), paths, monkeypatch)
    text = page_example(model.with_name("model.onnx.md"))
    for wrong in (text.replace("(255, 255, 255, 255)", "(0, 0, 0, 255)"),
                  text.replace("values = np.rint(values * (255.0 / 65535.0))", "pass"),
                  text.replace('img.mode.startswith("I;16") or high > 255', "high > 255"),
                  text.replace("values = np.rint(values * 255.0)", "pass"),
                  text.replace('img.mode == "F" and high <= 1.1', 'img.mode == "F" and high <= 1.0'),
                  text.replace("img = ImageOps.exif_transpose(img)", "pass"),
                  text.replace('if img.mode in ("P", "RGB", "L", "1") and', 'if img.mode == "P" and'),
                  text.replace("if sixteen and isinstance(key, int):", "if False:"),
                  text.replace('elif raw in ("L;2", "L;4")', 'elif False and raw in ("L;2", "L;4")'),
                  text.replace('if raw and raw.startswith("RGB;16")', 'if False'),
                  text.replace("img.draft(MODE, (SIDE, SIDE))", "pass"),
                  text.replace('if img.format in ("JPEG", "MPO"):', 'if img.format == "JPEG":')):
        assert wrong != text
        other = tmp_path / "other" / "model.onnx.md"
        other.parent.mkdir(exist_ok=True)
        other.write_text(f"```python\n{wrong}```\n")
        shutil.copy(model, other.parent / model.name)
        scores = [t[3] for t in run_page_example(other, paths, monkeypatch)]
        assert not np.allclose(scores, [t[3] for t in right], rtol=1e-6)


def test_a_pt2_export_has_its_page_and_the_cli_names_it(exported, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from imgclf.cli import app

    run, _ = exported
    result = CliRunner().invoke(app, ["export", str(run), "--format", "torchscript", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "load it with torch.export.load, not torch.jit.load" in output
    assert "how to call it, model.pt2.md" in output
    assert "torch.export.load(\"model.pt2\")" in (tmp_path / "model.pt2.md").read_text()
    # its example runs as written (it called the program on a `batch` it never made) and answers as imgclf does
    paths = tricky_images(tmp_path / "images")
    theirs = run_page_example(tmp_path / "model.pt2.md", paths, monkeypatch)
    ours = load_onnx(run).predict(paths)
    assert [t[0] for t in theirs] == [p.label for p in ours]  # "unknown" where imgclf says it
    assert [t[1] for t in theirs] == [p.best_label for p in ours]
    assert np.allclose([t[2] for t in theirs], [p.probability for p in ours], atol=1e-5)
    assert np.allclose([t[3] for t in theirs], [p.score for p in ours], rtol=1e-5)
    # the program is built once, not on every call (40 ms a call against a 2-7 ms forward pass)
    assert page_example(tmp_path / "model.pt2.md").count(".module()") == 1


def test_the_page_refuses_the_float_images_imgclf_refuses(exported, tmp_path, monkeypatch):
    """The page's decoding predicted float TIFFs holding NaN or negative values, which imgclf refuses."""
    _, model = exported
    values = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    for name, bad in (("nan.tif", np.where(values > 0.5, np.nan, values)), ("negative.tif", values - 0.2)):
        Image.fromarray(bad.astype(np.float32)).save(tmp_path / name)
        assert load_onnx(model.parent.parent).predict([str(tmp_path / name)])[0].error.startswith("float pixels hold")
        with pytest.raises(ValueError, match="float pixels hold NaN, infinity or values below -0.1"):
            run_page_example(model.with_name("model.onnx.md"), [str(tmp_path / name)], monkeypatch)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, as the page opens it
def test_the_page_refuses_the_images_imgclf_refuses_as_too_large(exported, tmp_path, monkeypatch):
    """Between Pillow's pixel limit and twice it Pillow only warns: the page predicted such an image, which every
    imgclf path refuses as a decompression bomb."""
    _, model = exported
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # a 15 x 15 image is over it, and under twice it
    Image.new("RGB", (15, 15), (200, 30, 30)).save(tmp_path / "large.png")
    path = str(tmp_path / "large.png")
    assert load_onnx(model.parent.parent).predict([path])[0].error.startswith("decompression bomb refused")
    with pytest.raises(ValueError, match="decompression bomb refused: 225 pixels"):
        run_page_example(model.with_name("model.onnx.md"), [path], monkeypatch)


def test_export_out_below_a_file_is_refused_naming_out(exported, tmp_path):
    from imgclf.errors import ImgclfError

    run, _ = exported
    blocker = tmp_path / "photo.png"
    blocker.write_bytes(b"x")
    with pytest.raises(ImgclfError, match=r"out must be a folder to write into.*is a file"):
        export_run(run, "pt2", out=blocker / "sub")


def test_a_class_name_holding_a_pipe_stays_in_its_table_cell(exported):
    """The class table is how a reader maps output columns to classes: "cat|dog" read as class "cat" and a column
    "dog" of its own."""
    import json

    from imgclf.export_usage import usage_page

    _, model = exported
    card = json.loads(model.with_name("model.onnx.json").read_text())
    card["classes"] = ["cat|dog", "back\\slash", card["classes"][2]]
    rows = [line for line in usage_page(card).splitlines() if line.startswith("| 0 ") or line.startswith("| 1 ")]
    assert rows == ["| 0 | cat\\|dog |", "| 1 | back\\\\slash |"]
