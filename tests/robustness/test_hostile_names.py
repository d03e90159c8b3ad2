"""Names are data: file and class names that look like spreadsheet formulas, terminal escape sequences or Rich
markup stay inert in every CSV we write and on the terminal, and our own readers get the names back unchanged."""

from __future__ import annotations

import csv
import io as std_io

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import imgclf
from imgclf.cli import app
from imgclf.io import csv_text, from_spreadsheet_safe, read_csv, spreadsheet_safe, terminal_safe
from imgclf.records import RunDir

CLASSES = ["=HYPERLINK(\"x\")", "+cmd", "@SUM(A1)", "[bold red]rich"]
ESCAPE_NAME = "\x1b]0;pwned\x07\x1b[31mred.png"


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    for i, name in enumerate(CLASSES):
        (root / "data" / name).mkdir(parents=True)
        for j in range(8):
            img = rng.integers(0, 40, (12, 12, 3), dtype=np.uint8)
            img[:, i * 3:(i + 1) * 3] = 230
            Image.fromarray(img).save(root / "data" / name / (f"-{j}.png" if j % 2 else f"\t{j}.png"))
    Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(root / "data" / CLASSES[0] / ESCAPE_NAME)
    run = imgclf.fit(data=str(root / "data"), img_size=12, epochs=1, batch_size=8, progress=False,
                     model_args={"width": 4}, val_split=0.25, test_split=0.25, out=str(root / "run"), report=False)
    return run.path, root / "data"


@pytest.mark.parametrize("cell", ["=1+1", "+cmd", "-cmd", "@x", "\tx", "\rx", "'-5", "'plain"])
def test_formula_cells_are_neutralised_and_read_back(cell):
    assert spreadsheet_safe(cell) == "'" + cell and from_spreadsheet_safe(spreadsheet_safe(cell)) == cell
    assert spreadsheet_safe("-0.25") == "-0.25" and spreadsheet_safe("plain") == "plain"  # numbers stay numbers


def test_every_csv_of_a_run_is_inert_in_a_spreadsheet(hostile_run):
    run_dir, _ = hostile_run
    for name in ("predictions.csv", "history.csv"):
        for row in csv.reader(std_io.StringIO((run_dir / name).read_text())):
            for cell in row:
                assert not cell.startswith(("=", "+", "@", "\t", "\r")), (name, cell)
                assert not (cell.startswith("-") and not _number(cell)), (name, cell)
    card = RunDir(run_dir).read_card()
    assert sorted(card.classes) == sorted(CLASSES)
    rows = RunDir(run_dir).read_predictions(card.classes)  # our reader gets the real names back
    assert {r.true for r in rows if not r.error} <= set(CLASSES)
    assert any(r.path.split("/")[-1].startswith(("-", "\t")) for r in rows)


def test_predict_csv_and_table_keep_names_inert(hostile_run):
    run_dir, data = hostile_run
    result = CliRunner().invoke(app, ["predict", str(run_dir), str(data / CLASSES[0]), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(std_io.StringIO(result.stdout)))
    for row in rows:
        assert not any(c.startswith(("=", "+", "@", "\t", "\r")) for c in row), row
    # piped, the CSV holds the file's real name: nothing that looks like a colour code is stripped from it
    assert any(row[0].endswith(ESCAPE_NAME) for row in rows)
    result = CliRunner().invoke(app, ["predict", str(run_dir), str(data / CLASSES[0]), "--format", "table"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b]0;pwned" in result.stdout  # shown, escaped, not acted on


def test_inspect_prints_names_as_text(hostile_run, tmp_path):
    """inspect printed the names of files it could not use raw: an escape sequence in one acted on the terminal
    (found by a walkthrough; the other commands escaped it). A zero-byte file says so."""
    import shutil

    _, data = hostile_run
    tree = shutil.copytree(data, tmp_path / "data")
    (tree / CLASSES[1] / ("empty" + ESCAPE_NAME)).write_bytes(b"")
    result = CliRunner().invoke(app, ["inspect", str(tree)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "empty\\x1b]0;pwned" in result.stdout and "empty file (0 bytes)" in result.stdout
    assert "[bold red]rich" in result.stdout  # Rich markup in a class name is printed, not applied


def test_evaluate_prints_class_names_as_text(hostile_run):
    run_dir, _ = hostile_run
    result = CliRunner().invoke(app, ["evaluate", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "[bold red]rich" in result.stdout  # Rich markup in a class name is printed, not applied


def test_csv_text_and_read_csv_round_trip(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text(csv_text(["path", "=h"], [["=cmd", "-1.5"], ["@a", "b"]]))
    assert read_csv(path) == [{"path": "=cmd", "=h": "-1.5"}, {"path": "@a", "=h": "b"}]
    # lines end in LF (CRLF left "b\r" in awk's and cut's last column); a line break inside a name stays a cell's
    names = ["two\r\nlines.png", "\rcr.png", "a\rb.png", "lf\n.png"]
    text = csv_text(["path", "n"], [[name, i] for i, name in enumerate(names)] + [["b", 9]])
    assert text.endswith("b,9\n") and text.count("\r") == 3
    path.write_bytes(text.encode())
    assert read_csv(path) == [{"path": name, "n": str(i)} for i, name in enumerate(names)] + [{"path": "b", "n": "9"}]


def test_terminal_safe_escapes_control_characters():
    assert terminal_safe("a\x1b[2Jb\u202ec") == "a\\x1b[2Jb\\u202ec"
    assert terminal_safe("日本語 ✓ émoji 🐈") == "日本語 ✓ émoji 🐈"


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def test_a_failed_figure_is_listed_in_the_train_summary_and_the_report(tmp_path, image_folder, monkeypatch):
    from imgclf.evaluation import plots

    def broken(*args, **kwargs):
        raise RuntimeError("no ink")

    monkeypatch.setattr(plots, "plot_confusion_matrix", broken)
    result = CliRunner().invoke(app, ["train", str(image_folder), "--img-size", "16", "--epochs", "1",
                                      "--model-args", "width=4", "--no-progress", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    summary = " ".join(result.stdout.split())
    assert "figure(s) could not be drawn" in summary and "confusion" in summary and "no ink" in summary
    assert "Could not draw this figure: no ink" in (tmp_path / "r" / "report.html").read_text()
    result = CliRunner().invoke(app, ["report", str(tmp_path / "r"), "--no-explain"])
    assert result.exit_code == 0 and "figure could not be drawn: confusion" in result.stderr


def test_a_full_disk_stops_the_report_at_its_first_figure(tiny_run, tmp_path, monkeypatch):
    """Each figure's failure was a warning of its own (14 of them, with source lines), then the page failed too."""
    import shutil

    from imgclf.evaluation import plots

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    calls = []

    def full(*args, **kwargs):
        calls.append(1)
        raise OSError(28, "No space left on device", str(run / "plots" / ".x.png.tmp"))

    for name in ("plot_class_distribution", "plot_confusion_matrix", "plot_training_curves"):
        monkeypatch.setattr(plots, name, full)
    result = CliRunner().invoke(app, ["report", str(run), "--no-explain"])
    assert result.exit_code == 1 and len(calls) == 1
    assert result.stderr.strip().splitlines() == [
        f"error: the disk holding {run / 'plots'} has no space left (No space left on device): the file being "
        "written was not kept, and the files written before it are whole. Make room there, or write elsewhere, then "
        "run the command again (an interrupted training run continues with imgclf train --resume RUN)"]


def test_names_that_are_not_utf8_are_skipped_and_named_not_a_crash_at_the_end(tmp_path, tiny_run):
    """An old archive's Latin-1 names ("caf\xe9.png", a class "d\xf6g"): training ran every epoch, then ended in a
    UnicodeEncodeError writing predictions.csv and left an unfinished run; predict -o x.csv crashed alike."""
    import os

    from typer.testing import CliRunner

    from conftest import make_image_folder
    from imgclf.cli import app
    from imgclf.data.folder import NOT_UTF8_NAME, scan_folder
    from imgclf.file_names import is_utf8_name

    root = make_image_folder(tmp_path / "data", classes=("cat", "dog", "fox"), per_class=6)
    first = sorted(os.listdir(root / "cat"))[0]
    os.rename(os.fsencode(root / "cat" / first), os.fsencode(root / "cat") + b"/caf\xe9.png")
    os.makedirs(os.fsencode(root) + b"/d\xf6g")
    loose = os.fsencode(root) + b"/loose\xe9.png"  # an image beside the class folders: listed as loose
    with open(loose, "wb") as handle:
        handle.write(b"x")
    scan = scan_folder(root)
    assert scan.classes == ["cat", "dog", "fox"] and len(scan.files["all"]) == 17
    reasons = {s["path"]: s["reason"] for s in scan.skipped}
    assert reasons.pop(str(root / "cat" / "caf\\xe9.png")) == NOT_UTF8_NAME
    assert reasons.pop(str(root / "d\\xf6g") + os.sep) == NOT_UTF8_NAME
    assert list(reasons) == [str(root / "loose\\xe9.png")]
    assert all(is_utf8_name(s["path"]) for s in scan.skipped)
    # a path given by name reaches predict; its CSV row shows the bytes escaped
    bad = os.fsdecode(os.fsencode(root / "cat") + b"/caf\xe9.png")
    result = CliRunner().invoke(app, ["predict", str(tiny_run), bad, "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert "caf\\xe9.png" in (tmp_path / "p.csv").read_text(encoding="utf-8")
    # and so does every other format: one spelling, not a lone surrogate in JSON and another on the terminal
    import json

    result = CliRunner().invoke(app, ["predict", str(tiny_run), bad, "--format", "table"])
    assert result.exit_code == 0 and "caf\\xe9.png" in result.output, result.output
    result = CliRunner().invoke(app, ["predict", str(tiny_run), bad, "--format", "json"])
    assert json.loads(result.output)[0]["path"].endswith("caf\\xe9.png")
    # in a folder given, it is predicted as when named (left out, it was predicted given alone; before that, a row
    # for its escaped name said "file not found")
    result = CliRunner().invoke(app, ["predict", str(tiny_run), str(root / "cat"), "-o", str(tmp_path / "q.csv")])
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and "left out" not in said, said
    import csv

    with open(tmp_path / "q.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    row = next(r for r in rows if r["path"].endswith("caf\\xe9.png"))
    assert len(rows) == 6 and not row["error"] and row["label"] in ("cat", "dog", "fox", "unknown"), rows
    assert len(imgclf.load(tiny_run).predict([str(root / "cat")])) == 6  # the Python API alike
    # explain draws each name in its figure, which takes no such name: there it is left out and named (read, it
    # ended in an internal error from matplotlib)
    result = CliRunner().invoke(app, ["explain", str(tiny_run), str(root / "cat"), "-o", str(tmp_path / "why.png")])
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and "1 file in the folders given left out" in said, said
