"""`imgclf evaluate` on another split or folder leaves the run's own results (its test scores) as they were."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imgclf.cli import app
from imgclf.errors import ImgclfError
from imgclf.records import RunDir


def test_evaluating_the_val_split_keeps_the_runs_test_metrics(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    own = (run / "metrics.json").read_bytes()
    result = CliRunner().invoke(app, ["evaluate", str(run), "--split", "val"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert (run / "metrics.json").read_bytes() == own  # the report and compare still read test scores
    written = run / "evaluations" / "val" / "metrics.json"
    assert json.loads(written.read_text())["split"] == "val"
    assert (written.parent / "predictions.csv").exists()
    assert f"wrote {written}" in " ".join(result.output.split())


def test_evaluating_a_folder_leaves_out_the_classes_training_dropped(image_folder, tmp_path, capsys):
    """A run trained with drop_classes (or classes) is evaluated on the whole folder as it was trained: the
    dropped class folders are left out, and the output says so, instead of a refusal naming them as unknown."""
    import imgclf
    from imgclf.records import RunDir

    run = imgclf.fit(data=str(image_folder), img_size=16, epochs=1, batch_size=16, progress=False,
                     model_args={"width": 4}, drop_classes=["fox"], out=str(tmp_path / "r"), report=False)
    result = CliRunner().invoke(app, ["evaluate", str(run.path), "--data", str(image_folder)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    foxes = len(list((image_folder / "fox").iterdir()))
    assert f"left out class folder(s) fox ({foxes} images) of the evaluated data, as the run's training did" \
        in " ".join(result.output.split())
    kept = [p for c in ("cat", "dog") for p in (image_folder / c).iterdir()]
    written = [m for m in (run.path / "evaluations").glob("*/metrics.json")]
    metrics = RunDir(written[0].parent).read_metrics()
    assert len(written) == 1 and metrics.count == len(kept) and "fox" not in metrics.per_class
    # the record says what was not scored, and a Python caller is told too (only the command said it)
    assert metrics.left_out == {"fox": foxes}
    capsys.readouterr()
    assert imgclf.evaluate(run.path, data=image_folder, progress=False).left_out == {"fox": foxes}
    assert f"left out class folder(s) fox ({foxes} images)" in capsys.readouterr().err
    assert "left_out" not in json.loads((run.path / "metrics.json").read_text())  # the run's own: nothing left out


def test_evaluating_images_the_run_learnt_from_says_so(tiny_run, image_folder, tmp_path):
    """`evaluate --data` on the training folder itself, or on a folder holding copies of training files, records
    which images the run trained or selected on (metrics.json `seen`) and warns: those scores are not held-out.
    Its own test split is not flagged; its val split is, whole."""
    from PIL import Image

    from imgclf.records import RunDir

    run = RunDir(shutil.copytree(tiny_run, tmp_path / "run"))
    dataset = run.read_dataset()
    train, val, test = (dataset.split_paths(s)[0] for s in ("train", "val", "test"))

    def evaluate(*args: str):
        result = CliRunner().invoke(app, ["evaluate", str(run.path), *args], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result, " ".join(result.output.split())

    result, said = evaluate("--data", str(image_folder))  # the very folder it was split from
    seen = [RunDir(m.parent).read_metrics() for m in (run.path / "evaluations").glob("*/metrics.json")][0].seen
    assert seen.by_split == {"train": len(train), "val": len(val)} and seen.exact_copies == 0
    assert f"{len(train) + len(val)} of the {len(train) + len(val) + len(test)} evaluated images" in said
    assert "not held-out scores" in said

    other = tmp_path / "other"  # copies under other names, beside an image the run never saw
    for n, path in enumerate([train[0], train[1], val[0], test[0]]):
        cls = Path(path).parent.name
        (other / cls).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, other / cls / f"copy-{n}.png")
    (other / "dog").mkdir(exist_ok=True)
    Image.new("RGB", (16, 16), (200, 10, 10)).save(other / "dog" / "new.png")
    evaluate("--data", str(other))
    written = RunDir(run.path / "evaluations" / next(p.name for p in (run.path / "evaluations").iterdir()
                                                      if p.name.startswith("other-")))
    seen = written.read_metrics().seen
    assert seen.by_split == {"train": 2, "val": 1} and seen.exact_copies == 3 and seen.images == 3
    assert all(Path(p).name.startswith("copy-") for p in seen.examples)

    result, said = evaluate("--split", "val")
    assert RunDir(run.path / "evaluations" / "val").read_metrics().seen.by_split == {"val": len(val)}
    assert "not held-out scores" in said
    result, said = evaluate()
    assert run.read_metrics().seen is None and "not held-out" not in said

    # the run's data folder moved away: the check cannot find the training images, and says so (it said nothing)
    moved = shutil.copytree(image_folder, tmp_path / "data")
    record = json.loads(run.file("dataset.json").read_text())
    record["root"], record["roots"] = str(moved), [str(moved)]
    run.file("dataset.json").write_text(json.dumps(record))
    result, said = evaluate("--data", str(other))
    assert "not held-out scores" in said and "gone from where it trained" not in said
    shutil.move(moved, tmp_path / "elsewhere")
    result, said = evaluate("--data", str(tmp_path / "elsewhere"))
    seen = RunDir(run.path / "evaluations" / next(p.name for p in (run.path / "evaluations").iterdir()
                                                  if p.name.startswith("elsewhere-"))).read_metrics().seen
    assert seen.images == 0 and seen.unchecked == len(train) + len(val)
    assert f"{len(train) + len(val)} of the run's train and val files are gone from where it trained" in said
    assert "evaluated images are images the run trained" not in said


def test_evaluating_a_run_without_a_test_split_says_the_scores_are_validation_scores(image_folder, tmp_path,
                                                                                      tiny_run, capsys):
    """Training, its report and `imgclf evaluate` all say so: the val split chose what the run kept."""
    import imgclf
    from imgclf.evaluation.report import write_report

    run = imgclf.fit(data=str(image_folder), img_size=16, epochs=1, batch_size=16, progress=False,
                     model_args={"width": 4}, val_split=0.25, test_split=0, out=str(tmp_path / "r"), report=False)
    note = "no test split (trained with test_split 0): these are its validation scores"
    assert note in " ".join(capsys.readouterr().err.split())
    page = " ".join(write_report(run.path).read_text().split())
    assert f"<li>The run has {note}" in page and "of the val images score below the threshold" in page
    result = CliRunner().invoke(app, ["evaluate", str(run.path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert json.loads((run.path / "metrics.json").read_text())["split"] == "val"
    assert "no test split (trained with test_split 0): these are its validation scores" in \
        " ".join(result.stderr.split())
    held_out = CliRunner().invoke(app, ["evaluate", str(shutil.copytree(tiny_run, tmp_path / "tiny"))],
                                  env={"COLUMNS": "200"})
    assert held_out.exit_code == 0 and "no test split" not in held_out.stderr


def test_the_note_on_validation_scores_names_why_there_is_no_test_split_and_what_val_chose(tmp_path, capsys):
    """A train/ + val/ folder has no test split whatever test_split says, and its fix is test images; a run that
    kept its last epoch (a study's protocol, whose val split is its test split) chose no epoch on val, so its
    accuracy does not overstate and training does not warn; the report still says what val chose."""
    import imgclf
    from conftest import make_image_folder
    from imgclf.evaluation.report import write_report

    folders = make_image_folder(tmp_path / "split", classes=("a", "b"), layout="splits",
                                per_split={"train": 12, "val": 6})
    imgclf.fit(data=str(folders), img_size=16, epochs=1, batch_size=8, progress=False, model_args={"width": 4},
               out=str(tmp_path / "given"), report=False)
    said = " ".join(capsys.readouterr().err.split())
    assert "the data has no test split (no test/ folder, or no row of split test): these are its validation " \
           "scores, on the images that chose the epoch kept" in said and "test_split 0" not in said, said
    assert "give it test images (a test/ folder, or rows of split test) for scores to quote" in said
    flat = make_image_folder(tmp_path / "flat", classes=("a", "b"), per_class=12)
    run = imgclf.fit(data=str(flat), img_size=16, epochs=1, batch_size=8, progress=False, model_args={"width": 4},
                     val_split=0.3, test_split=0, restore_best=False, early_stopping=None, out=str(tmp_path / "last"),
                     report=False)
    assert run.metrics.split == "val" and "validation scores" not in capsys.readouterr().err
    page = " ".join(write_report(run.path).read_text().split())
    assert ("on the images that chose the temperature and the unknown threshold, so its calibration and "
            "unknown-input figures overstate (not its accuracy: training kept the last epoch)") in page
    # the figures' captions name the split scored too; the unknown scores show val once, not again as "test"
    assert "the run has no test split to show beside it" in page
    from imgclf.evaluation.report_figures import _unknown_scores
    from imgclf.records import RunDir

    assert list(_unknown_scores(RunDir(run.path), RunDir(run.path).read_card(), "val")) == ["validation"]
    assert ("A random mix of right and wrong val predictions" in page or "Every val image, all" in page) \
        and "n = number of val images" in page
    assert "test predictions" not in page and "number of test images" not in page


def test_evaluating_a_folder_s_test_split_lists_what_it_skipped_there_and_nothing_of_train(tiny_run, image_folder,
                                                                                             tmp_path):
    """A notes.txt in train/ was listed as skipped by an evaluation of test/, while an unreadable image in
    train/ was not (never decoded): only what the evaluated split skipped is its business, listed whole."""
    from imgclf.records import RunDir

    run = RunDir(shutil.copytree(tiny_run, tmp_path / "run"))
    data = tmp_path / "ev"
    for split in ("train", "test"):
        shutil.copytree(image_folder, data / split)
    (data / "train" / "cat" / "notes.txt").write_text("not an image")
    (data / "train" / "dog" / "broken.jpg").write_bytes(b"not a jpeg")
    (data / "test" / "cat" / "readme.txt").write_text("not an image")
    (data / "test" / "dog" / "broken.png").write_bytes(b"not a png")
    result = CliRunner().invoke(app, ["evaluate", str(run.path), "--data", str(data)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    (written,) = (run.path / "evaluations").glob("*/metrics.json")
    skipped = sorted(Path(s.path).relative_to(data).as_posix() for s in RunDir(written.parent).read_metrics().skipped)
    assert skipped == ["test/cat/readme.txt", "test/dog/broken.png"]
    assert "2 files skipped:" in result.output and "notes.txt" not in result.output
    # the unreadable image's row in predictions.csv keeps the class its folder gives (it was left empty)
    rows = {Path(r.path).name: r for r in RunDir(written.parent).read_predictions(["cat", "dog", "fox"])}
    assert rows["broken.png"].true == "dog" and rows["broken.png"].error and not rows["broken.png"].pred
    # nothing readable: the error says why, with the files' reasons (it said "2 file(s), none readable" alone)
    (tmp_path / "bad" / "dog").mkdir(parents=True)
    shutil.copy(data / "test" / "dog" / "broken.png", tmp_path / "bad" / "dog" / "broken.png")
    result = CliRunner().invoke(app, ["evaluate", str(run.path), "--data", str(tmp_path / "bad")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "1 file(s), none readable (broken.png: " in result.output, result.output
    (tmp_path / "bad" / "dog" / "notes.txt").write_text("not an image")  # passed over by the scan: counted too
    result = CliRunner().invoke(app, ["evaluate", str(run.path), "--data", str(tmp_path / "bad")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "2 file(s), none readable (" in result.output, result.output
    # the folder is said by its absolute path, as its evaluation folder is named ("." said nothing elsewhere)
    import imgclf

    for given in (data, os.path.relpath(data), f"{data}/../{data.name}"):
        assert imgclf.evaluate(run.path, data=str(given), progress=False).split == f"{data}:test"
    with pytest.raises(ImgclfError, match=r"^data must be a path \('\.' for the current folder\)\. Received: data=''"):
        imgclf.evaluate(run.path, data="", progress=False)  # the command line refuses it; "" was the working folder


def test_a_folder_s_split_is_the_one_asked_and_a_folder_of_test_alone_is_evaluated(tiny_run, image_folder, tmp_path):
    """--split train with --data was ignored (test/ was scored) and on a folder without split folders evaluated
    all of it, both without a word; a folder holding test/ alone was refused for lacking train/."""
    from imgclf.records import RunDir

    run = RunDir(shutil.copytree(tiny_run, tmp_path / "run"))
    data = tmp_path / "ev"
    shutil.copytree(image_folder, data / "test")
    (data / "train" / "cat").mkdir(parents=True)
    for path in sorted((image_folder / "cat").iterdir())[:5]:
        shutil.copy(path, data / "train" / "cat" / path.name)

    def evaluate(*args: str):
        return CliRunner().invoke(app, ["evaluate", str(run.path), *args], env={"COLUMNS": "200"})

    counts = {}
    for split in ("train", "test"):
        result = evaluate("--data", str(data), "--split", split)
        assert result.exit_code == 0, result.output
        metrics = RunDir(next(p for p in (run.path / "evaluations").iterdir() if p.name.endswith(
            "-train") == (split == "train"))).read_metrics()
        counts[split] = (metrics.split, metrics.count)
    assert counts == {"train": (f"{data}:train", 5), "test": (f"{data}:test", 60)}
    refused = evaluate("--data", str(data), "--split", "val")
    assert refused.exit_code == 2 and "split must be one of the split folders" in refused.output
    assert "Received: split='val'" in " ".join(refused.output.split())
    flat = evaluate("--data", str(image_folder), "--split", "train")
    assert flat.exit_code == 2 and "has no split folders" in " ".join(flat.output.split())
    shutil.rmtree(data / "train")
    alone = evaluate("--data", str(data))
    assert alone.exit_code == 0 and f"{data}:test: accuracy" in " ".join(alone.output.split()), alone.output


def test_evaluating_a_run_whose_data_folder_moved_names_the_folder(tmp_path, image_folder):
    """It said the split held no readable image: true, and no help."""
    import imgclf

    data = shutil.copytree(image_folder, tmp_path / "data")
    run = imgclf.fit(data=str(data), img_size=16, epochs=1, batch_size=16, progress=False, model_args={"width": 4},
                     out=str(tmp_path / "r n"), report=False)
    data.rename(tmp_path / "moved")
    result = CliRunner().invoke(app, ["evaluate", str(run.path)], env={"COLUMNS": "200"})
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and f"{data} is no longer a folder" in output and "--data FOLDER" in output, output
    assert f"imgclf evaluate '{run.path}' --data FOLDER" in output  # quoted, to paste
    # a class folder renamed: scored on the rest, the run's own metrics.json was replaced by another split's
    (tmp_path / "moved").rename(data)
    before = (run.path / "metrics.json").read_bytes()
    test_files = RunDir(run.path).read_dataset().split_paths("test")[0]
    moved = Path(test_files[0]).parent
    moved.rename(moved.with_name(moved.name + "-renamed"))
    gone = sum(Path(f).parent == moved for f in test_files)
    result = CliRunner().invoke(app, ["evaluate", str(run.path)], env={"COLUMNS": "200"})
    output = " ".join(result.output.split())
    assert result.exit_code == 2, output
    assert f"{gone} of its {len(test_files)} images are gone" in output and "--data FOLDER" in output, output
    assert f"imgclf evaluate '{run.path}' --data FOLDER" in output  # quoted: pasted bare, it split at the space
    assert (run.path / "metrics.json").read_bytes() == before


def test_a_folder_with_an_empty_class_folder_is_evaluated_on_the_others(tiny_run, image_folder, tmp_path):
    """It was refused with a hint to pass --drop-classes, which evaluate does not take: an evaluation has no use
    for a class folder's images it does not have."""
    from imgclf.records import RunDir

    run = RunDir(shutil.copytree(tiny_run, tmp_path / "run"))
    data = shutil.copytree(image_folder, tmp_path / "ev")
    shutil.rmtree(data / "fox")
    (data / "fox").mkdir()
    result = CliRunner().invoke(app, ["evaluate", str(run.path), "--data", str(data)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    (written,) = (run.path / "evaluations").glob("*/metrics.json")
    assert RunDir(written.parent).read_metrics().count == 40


def test_an_empty_test_folder_gives_way_to_the_next_split_with_images(tiny_run, image_folder, tmp_path):
    from imgclf.records import RunDir

    run = RunDir(shutil.copytree(tiny_run, tmp_path / "run"))
    data = tmp_path / "ev"
    shutil.copytree(image_folder, data / "val")
    for name in ("cat", "dog", "fox"):
        (data / "test" / name).mkdir(parents=True)
    result = CliRunner().invoke(app, ["evaluate", str(run.path), "--data", str(data)], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and f"{data}:val: accuracy" in " ".join(result.output.split()), result.output


def test_a_run_that_named_a_class_in_nfd_is_evaluated_on_its_folder(tmp_path):
    """Folders are read by their classes' NFC names since 2026-12-05; a run trained before on a folder a Mac
    named (NFD) keeps that name, and evaluating it on its own folder was refused: "the model does not know café"."""
    import unicodedata

    import imgclf
    from conftest import make_image_folder

    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    make_image_folder(tmp_path / "d", classes=(nfd, "tea"), per_class=6)
    run = imgclf.fit(data=str(tmp_path / "d"), img_size=16, epochs=1, batch_size=8, progress=False,
                     model_args={"width": 4}, out=str(tmp_path / "r"), report=False)
    import json

    for record in [*run.path.glob("*.json"), *run.path.glob("*.csv"), *run.path.glob("*.yaml")]:
        text = record.read_text(encoding="utf-8").replace(nfc, nfd)  # every record as the old release wrote it
        record.write_text(text.replace(json.dumps(nfc)[1:-1], json.dumps(nfd)[1:-1]), encoding="utf-8")
    assert imgclf.load(run.path).card.classes == [nfd, "tea"]
    result = imgclf.evaluate(run.path, data=str(tmp_path / "d"))
    assert result.count == 12 and set(result.per_class) == {nfd, "tea"}


def test_an_evaluation_of_a_relative_folder_records_absolute_paths(tiny_run, image_folder, tmp_path, monkeypatch):
    """evaluate RUN --data d from d's parent wrote predictions.csv rows 'd/cat/x.png', which point nowhere read from
    another folder (the run's own predictions.csv is absolute)."""
    import csv
    import shutil

    import imgclf

    shutil.copytree(image_folder / "cat", tmp_path / "d" / "cat")
    (tmp_path / "d" / "cat" / "broken.png").write_bytes(b"not a png")
    run = shutil.copytree(tiny_run, tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    result = imgclf.evaluate(run, data="d")
    folder = next((Path(run) / "evaluations").iterdir())
    with open(folder / "predictions.csv", newline="") as f:
        paths = [row["path"] for row in csv.DictReader(f)]
    assert paths and all(Path(p).is_absolute() and Path(p).is_file() for p in paths)
    assert [Path(s.path).is_absolute() for s in result.skipped] == [True]


def test_a_folder_is_refused_only_for_unknown_classes_among_the_images_evaluated(tiny_run, image_folder, tmp_path):
    """A train/owl/ beside the test/ evaluated refused the whole folder; a refusal names the split, offers the
    model's class a folder may misspell, and a way on."""
    import shutil

    import imgclf

    for split, names in (("train", ("cat", "dog", "owl")), ("test", ("cat", "dog"))):
        for name in names:
            shutil.copytree(image_folder / ("fox" if name == "owl" else name), tmp_path / "d" / split / name)
    run = shutil.copytree(tiny_run, tmp_path / "run")  # evaluations are written into the run
    assert imgclf.evaluate(run, data=str(tmp_path / "d")).count == 2 * len(list((image_folder / "cat").iterdir()))
    shutil.copytree(image_folder / "cat", tmp_path / "flat" / "Cats")
    shutil.copytree(image_folder / "dog", tmp_path / "flat" / "owl")
    with pytest.raises(ImgclfError, match=r"class folder\(s\) \['Cats', 'owl'\] the model does not know; did you "
                                          r"mean Cats for cat\?.*imgclf predict RUN FOLDER"):
        imgclf.evaluate(run, data=str(tmp_path / "flat"))


def test_evaluate_keeps_the_test_time_augmentation_training_scored(tiny_run, tmp_path):
    """README's next step after training, `imgclf evaluate RUN`, dropped the TTA scores training's evaluation had
    written (with a warning), and the report lost them; --no-tta still leaves them out."""
    from imgclf.records import RunDir

    run = shutil.copytree(tiny_run, tmp_path / "run")
    assert RunDir(run).read_metrics().tta is not None
    result = CliRunner().invoke(app, ["evaluate", str(run)], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "are not in the new metrics.json" not in result.output, result.output
    assert RunDir(run).read_metrics().tta is not None
    result = CliRunner().invoke(app, ["evaluate", str(run), "--no-tta"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and RunDir(run).read_metrics().tta is None
    # from Python as from the command line: README's imgclf.evaluate(run) dropped them too (its default was off)
    import imgclf

    assert imgclf.evaluate(run, progress=False).tta is not None and RunDir(run).read_metrics().tta is not None
    assert imgclf.evaluate(run, progress=False, tta=False).tta is None
    from imgclf.errors import ImgclfError

    for bad in (None, 3, "bogus"):  # None and 3 reached a path join: a bare TypeError
        with pytest.raises(ImgclfError, match=rf"split must be one of \{{test, train, val\}}. Received: split={bad!r}"):
            imgclf.evaluate(run, split=bad)
    # the record returned is the file written, read back: it said schema_version 1 (a dict built without one reads
    # as an old file) beside a metrics.json at 2 (the file leaves out `backend` when it is torch, its default)
    import json

    returned = imgclf.evaluate(run, progress=False).model_dump(mode="json")
    assert returned == RunDir(run).read_metrics().model_dump(mode="json")
    assert json.loads((Path(run) / "metrics.json").read_text())["schema_version"] == returned["schema_version"]


def test_the_terminal_table_says_how_the_averages_count_a_dash(tiny_run, image_folder, tmp_path):
    """A class never predicted shows a dash for precision while the macro average counts it as 0: the row means
    did not add up to the average printed under them, and only the report said why."""
    run = shutil.copytree(tiny_run, tmp_path / "run")
    shutil.copytree(image_folder / "cat", tmp_path / "one" / "cat")  # dog and fox: no image, recall a dash
    result = CliRunner().invoke(app, ["evaluate", str(run), "--data", str(tmp_path / "one")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Recall and F1 “—”: no evaluated image (dog, fox); the averages leave the class out" in \
        " ".join(result.output.split()), result.output
