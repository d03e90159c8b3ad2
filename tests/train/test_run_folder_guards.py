"""What a run folder is protected from: a mistyped --overwrite command, a second training into it, settings that
a resume would record but not train with, and a sweep that would pass for the run's own."""

from __future__ import annotations

import logging
import json
import shutil
import subprocess
import sys
import time

import pytest

import imgclf
from conftest import make_image_folder
from imgclf.errors import ImgclfError
from imgclf.pipeline import resolve_config, train_run
from imgclf.pipeline.run import LOCK_FILE
from imgclf.records import RunDir

SMALL = {"model": "simple_cnn", "img_size": 16, "batch_size": 8, "progress": False, "model_args": {"width": 4},
         "val_split": 0.25, "test_split": 0.2, "seed": 0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("guards"), per_class=12)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data):
    """A finished 2-epoch run with an export/ folder, copied by each test that changes it."""
    run = imgclf.fit({**SMALL, "data": str(data), "epochs": 2, "out": str(tmp_path_factory.mktemp("f") / "run")},
                     report=False)
    (run.path / "export").mkdir()
    (run.path / "export" / "model.onnx").write_bytes(b"an earlier export")
    return run.path


def _copy(run, tmp_path):
    return shutil.copytree(run, tmp_path / "run")


def test_a_resume_on_images_changed_in_place_says_so_once(finished, data, tmp_path, caplog):
    """A training image overwritten (same name, same label) between Ctrl-C and --resume: the resumed epochs
    trained on other pixels than the first ones, without a word."""
    from PIL import Image

    moved = shutil.copytree(data, tmp_path / "data")  # copied with its files' times: the same images
    run_dir = _copy(finished, tmp_path)
    (run_dir / "config.yaml").write_text((run_dir / "config.yaml").read_text().replace(str(data), str(moved)))
    imgclf.fit(resume=str(run_dir), epochs=3, report=False)
    assert not [r for r in caplog.records if "changed since" in r.getMessage()]
    listed = moved / RunDir(run_dir).read_dataset().splits["train"].files[0]
    Image.new("RGB", (20, 20)).save(listed)  # black, where it had a picture
    imgclf.fit(resume=str(run_dir), epochs=4, report=False)
    said = [r.getMessage() for r in caplog.records if "changed since" in r.getMessage()]
    assert len(said) == 1 and "the images of this run's splits changed since it last trained" in said[0], said
    assert "the resumed epochs train on them as they are now" in said[0], said
    imgclf.fit(resume=str(run_dir), epochs=5, report=False)  # said once: the record now holds the images as they are
    assert len([r for r in caplog.records if "changed since" in r.getMessage()]) == 1


def test_a_bad_command_with_overwrite_keeps_the_run_it_would_replace(finished, data, tmp_path):
    run_dir = _copy(finished, tmp_path)
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(ImgclfError, match="model_args"):  # refused when the model is built, after the data is read
        imgclf.fit({**SMALL, "data": str(data), "epochs": 1, "out": str(run_dir), "model_args": {"widht": 4}},
                   overwrite=True)
    after = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before

    # the corrected command replaces all of it, the old export too (it was made from the weights replaced)
    imgclf.fit({**SMALL, "data": str(data), "epochs": 1, "out": str(run_dir)}, overwrite=True)
    assert not (run_dir / "export").exists()
    assert [r.epoch for r in RunDir(run_dir).read_history()] == [1]


def test_overwrite_never_trains_into_another_image_folder(data, finished, tmp_path):
    """`--out digits --overwrite` (another data set) wrote the run's files beside its class folders: the next
    scan of it read checkpoints/ and plots/ as classes."""
    from imgclf.pipeline.run_folder import check_run_dir

    other = make_image_folder(tmp_path / "other", per_class=2)
    before = sorted(p.relative_to(other) for p in other.rglob("*"))
    with pytest.raises(ImgclfError, match=r"^out must be an empty or new folder.*it holds folders of images: a data "
                                          "set, not a run"):
        imgclf.fit({**SMALL, "data": str(data), "epochs": 1, "out": str(other)}, overwrite=True)
    assert sorted(p.relative_to(other) for p in other.rglob("*")) == before
    # a data set keeping its own config.yaml: taken for a run, its config.yaml was overwritten
    (other / "config.yaml").write_text("model: simple_cnn\n")
    with pytest.raises(ImgclfError, match=r"a data set, not a run"):
        check_run_dir(other, overwrite=True, resume=False)
    # a folder of runs (their plots/ no data set): the run wrapped them, and `imgclf runs` listed it alone
    shutil.copytree(finished, tmp_path / "runs" / "old")
    for overwrite in (True, False):  # without it, "not empty" advised --overwrite, which this refuses
        with pytest.raises(ImgclfError, match=r"a folder of runs: --overwrite replaces one run, not those"):
            check_run_dir(tmp_path / "runs", overwrite=overwrite, resume=False)
    # an lr-find's folder holds a run's files: replaced with the run (a stale lr_find.json went to MLflow)
    (tmp_path / "lr-find").mkdir()
    (tmp_path / "lr-find" / "lr_find.png").write_bytes(b"png")
    assert check_run_dir(tmp_path / "lr-find", overwrite=True, resume=False) is True


def test_an_out_holding_a_folder_that_cannot_be_read_gets_the_usual_refusal(tmp_path, monkeypatch):
    """--out / met /proc/1/cwd, unreadable, while looking for a data set there: an internal PermissionError."""
    from pathlib import Path

    from imgclf.pipeline.run_folder import check_run_dir

    (tmp_path / "full" / "locked" / "inner").mkdir(parents=True)
    (tmp_path / "full" / "notes.txt").write_text("mine")
    listing = Path.iterdir

    def iterdir(self):
        if self.name in ("locked", "inner"):
            raise PermissionError(13, "Permission denied", str(self))
        return listing(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(ImgclfError, match=r"^out must be an empty or new folder"):
        check_run_dir(tmp_path / "full", overwrite=False, resume=False)


def _hold_lock(folder):
    """Another process holding the folder's training lock, as a running `imgclf train` does."""
    code = ("import sys, time; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
            "print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder / LOCK_FILE)], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_training_into_a_folder_in_use_is_refused_and_the_folder_frees_when_its_holder_dies(data, tmp_path):
    folder = tmp_path / "busy"
    folder.mkdir()
    holder = _hold_lock(folder)
    try:
        for resume in (False, True):
            with pytest.raises(ImgclfError, match=r"in use by another imgclf process \(a training") as info:
                if resume:
                    (folder / "config.yaml").write_text("")  # refused for the lock before the config is read
                    # a file the running process is writing: a resume refused must not delete it under it
                    (folder / ".model.safetensors.x1y2.tmp").write_bytes(b"being written")
                    train_run(resolve_config({**SMALL, "data": str(data), "epochs": 1, "out": str(folder)}),
                              resume=True)
                else:
                    imgclf.fit({**SMALL, "data": str(data), "epochs": 1, "out": str(folder)})
            assert str(info.value).startswith("resume " if resume else "out ")  # the option that named the folder
            (folder / "config.yaml").unlink(missing_ok=True)
        assert (folder / ".model.safetensors.x1y2.tmp").read_bytes() == b"being written"
        (folder / ".model.safetensors.x1y2.tmp").unlink()
        assert sorted(p.name for p in folder.iterdir()) == [LOCK_FILE]  # nothing of the refused run was written
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    run = imgclf.fit({**SMALL, "data": str(data), "epochs": 1, "out": str(folder)}, report=False)  # a dead holder's
    assert (run.path / "model.safetensors").is_file()  # lock is free, and its leftover lock file is no run file
    assert not (folder / LOCK_FILE).exists()  # released when the run ended


@pytest.mark.parametrize("then", ["removed", "replaced"])
def test_a_run_whose_folder_is_removed_while_it_trains_stops_and_writes_nothing_more(data, tmp_path, monkeypatch,
                                                                                      then):
    """rm -rf of the folder mid-run: every write re-made it by its path, and a second run given the same --out with
    --overwrite (the first's lock gone with the folder) shared it, mixing the two runs' files; the first run's end
    then unlinked the second's lock. Training stops before its next write instead, and leaves what is there."""
    from imgclf.train.callbacks import HistoryWriter

    run_dir = tmp_path / "run"
    ended = HistoryWriter.on_train_epoch_end

    def remove_after_first_epoch(self, trainer, module):
        ended(self, trainer, module)
        if trainer.current_epoch == 0:
            shutil.rmtree(run_dir)
            if then == "replaced":  # another run's folder now, its lock file held by it
                run_dir.mkdir()
                (run_dir / "config.yaml").write_text("the other run's")
                (run_dir / LOCK_FILE).write_text("")

    monkeypatch.setattr(HistoryWriter, "on_train_epoch_end", remove_after_first_epoch)
    with pytest.raises(ImgclfError, match=rf"^training stopped: the run folder {run_dir} was removed or replaced "
                                          r"while this run trained"):
        imgclf.fit({**SMALL, "data": str(data), "epochs": 3, "out": str(run_dir)}, report=False)
    if then == "removed":
        assert not run_dir.exists()  # not made again by the run's next write
    else:
        assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml", LOCK_FILE]
        assert (run_dir / "config.yaml").read_text() == "the other run's"


def test_an_evaluation_a_read_only_run_cannot_keep_is_refused_before_the_work(finished, data, monkeypatch):
    """evaluate --data on a read-only run (a colleague's, a read-only mount) predicted every image, then said the
    disk was read-only and to "write elsewhere", which evaluate has no option for."""
    import errno
    import tempfile

    import imgclf.evaluation.run_eval as run_eval

    real = tempfile.mkdtemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(str(finished)):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    monkeypatch.setattr(run_eval, "evaluate_run", lambda *a, **k: pytest.fail("the images were predicted"))
    with pytest.raises(ImgclfError, match=r"^run_dir must be a folder to write into.*cannot write in .*Read-only"):
        imgclf.evaluate(finished, data=str(data))


def test_commands_that_rewrite_a_run_wait_for_no_training_and_say_it_is_being_trained(finished, data, tmp_path):
    """calibrate beside a resume said it wrote model.json, and the resume then put back its own (config.yaml asked
    for one acceptance, model.json held another); evaluate told the user to --resume a run being trained now."""
    run = shutil.copytree(finished, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    holder = _hold_lock(run)
    try:
        for what, call in (("calibrate", lambda: imgclf.calibrate(run, unknown_acceptance=0.99)),
                           ("evaluate", lambda: imgclf.evaluate(run)), ("report", lambda: imgclf.report(run))):
            with pytest.raises(ImgclfError, match=rf"^run_dir must be a run no other process is using.*in use by another "
                                                  rf"imgclf process now \(a training.*then run imgclf {what} again"):
                call()
        # scores of other images go to evaluations/: beside a training, as before
        assert imgclf.evaluate(run, data=str(data)).count > 0
        from typer.testing import CliRunner

        from imgclf.cli import app

        for command in ("calibrate", "evaluate", "report"):  # the command line's own report call too
            result = CliRunner().invoke(app, [command, str(run)])
            assert result.exit_code == 2 and "in use by another imgclf process now" in result.output, result.output
    finally:
        holder.kill()
        holder.wait()
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != LOCK_FILE} == before
    imgclf.calibrate(run, unknown_acceptance=0.99, report=False)  # its holder gone, the run is free again
    assert not (run / LOCK_FILE).exists()


def test_a_run_read_before_its_training_wrote_its_card_says_it_is_training_now(finished, tmp_path):
    """predict on a run in its third epoch said "training unfinished? (imgclf train --resume RUN finishes it)",
    which was then refused as in use by another process."""
    run = shutil.copytree(finished, tmp_path / "run")
    (run / "model.json").unlink()
    holder = _hold_lock(run)
    try:
        with pytest.raises(ImgclfError, match=rf"no model.json yet: the run is training now \(its imgclf train holds "
                                              rf"{LOCK_FILE}\); retry once it ends"):
            imgclf.load(run)
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(ImgclfError, match=r"no model.json: training unfinished\? \(imgclf train --resume .* finishes"):
        imgclf.load(run)


# the schedule's settings too: Lightning restores the scheduler's state over them (a step schedule resumed with
# lr_step 1 kept stepping every 10 epochs; a plateau on val_loss resumed on val_acc took a fall for a gain)
@pytest.mark.parametrize("setting,value", [("lr", 0.5), ("weight_decay", 0.1), ("momentum", 0.5),
                                           ("backbone_lr_mult", 0.5), ("lr_step", 1), ("lr_factor", 0.5),
                                           ("lr_patience", 1), ("min_lr", 1e-5), ("monitor", "val_acc"),
                                           ("nesterov", True), ("steps_per_epoch", 2)])
def test_a_resume_refuses_optimiser_settings_its_checkpoint_would_bring_back(finished, tmp_path, setting, value):
    run_dir = _copy(finished, tmp_path)
    config = (run_dir / "config.yaml").read_bytes()
    with pytest.raises(ImgclfError, match=f"{setting}.*a resumed run keeps it.*--out NEW \\(Python: imgclf.fit"
                                          f"\\(config_file='.*config.yaml', {setting}=..., out=NEW\\)\\)"):
        imgclf.fit(resume=str(run_dir), epochs=3, **{setting: value})
    assert (run_dir / "config.yaml").read_bytes() == config


def test_a_resume_refusing_a_setting_the_run_never_had_says_unset(finished, tmp_path):
    """--resume RUN --folds 3 said "folds must be None for this run": Python's word for a setting never given."""
    run_dir = _copy(finished, tmp_path)
    with pytest.raises(ImgclfError, match=r"folds .*must be unset for this run, as it was trained"):
        imgclf.fit(resume=str(run_dir), folds=3)


@pytest.mark.parametrize("damage", ["deleted", "cut inside its header"])
def test_a_resume_whose_history_lost_saved_epochs_is_refused(finished, tmp_path, damage):
    """It went on: the card then counted only the new epochs, the earlier rows lost without a word."""
    run_dir = _copy(finished, tmp_path)
    history = run_dir / "history.csv"
    if damage == "deleted":
        history.unlink()
    else:
        history.write_bytes(history.read_bytes()[:20])
    config = (run_dir / "config.yaml").read_bytes()
    with pytest.raises(ImgclfError, match=r"history.csv holds a row for every epoch its checkpoint saved.*"
                                          r"history.csv holds 0, checkpoints/last.ckpt 2.*delete .*last.ckpt"):
        imgclf.fit(resume=str(run_dir), epochs=3, report=False)
    assert (run_dir / "config.yaml").read_bytes() == config


def test_a_resume_refuses_another_out(finished, tmp_path):
    run_dir = _copy(finished, tmp_path)
    with pytest.raises(ImgclfError, match="out.*unset with resume"):
        imgclf.fit(resume=str(run_dir), epochs=3, out=str(tmp_path / "elsewhere"))
    assert not (tmp_path / "elsewhere").exists()
    imgclf.fit(resume=str(run_dir), epochs=3, out=str(run_dir), report=False)  # its own folder, named: accepted
    assert [r.epoch for r in RunDir(run_dir).read_history()] == [1, 2, 3]


def test_a_read_only_run_given_to_resume_is_named_as_resume(finished, tmp_path, monkeypatch):
    """A run copied read-only, then resumed: the error named --out, which the user never passed."""
    import tempfile
    from pathlib import Path

    run_dir = _copy(finished, tmp_path)
    real = tempfile.mkdtemp

    def refused(*args, dir=None, **kwargs):  # what a read-only folder answers (root is let write anywhere)
        if dir is not None and Path(dir) == Path(run_dir):
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    with pytest.raises(ImgclfError, match=r"^resume must be a folder to write into\. Received: resume='.*"
                                          r"\(cannot write in .*: Permission denied\)"):
        imgclf.fit(resume=str(run_dir), epochs=3)


def test_a_resume_inside_an_epoch_refuses_another_batch_size(data, tmp_path, steps, monkeypatch):
    from imgclf.train.fit import TrainingInterrupted
    from imgclf.train.module import ImageClassifierModule

    settings = {**SMALL, "data": str(data), "epochs": 2, "batch_size": 2, "checkpoint_every": 2,
                "out": str(tmp_path / "cut")}
    original = ImageClassifierModule.training_step

    def interrupt(self, batch, batch_idx):
        if self.trainer.current_epoch == 0 and batch_idx == 5:  # inside epoch 1, after the save at its 4th step
            raise KeyboardInterrupt
        return original(self, batch, batch_idx)

    with monkeypatch.context() as m:
        m.setattr(ImageClassifierModule, "training_step", interrupt)
        with pytest.raises(TrainingInterrupted):
            imgclf.fit(settings, report=False)
    with pytest.raises(ImgclfError, match=r"batch_size.*stopped inside \(4 batches of it trained\)") as info:
        imgclf.fit(resume=str(tmp_path / "cut"), batch_size=4)
    assert "--epochs 1 " in str(info.value)
    # so is another number of processes: each counts its own share of the batches trained (checked as the resume
    # checks it, without launching the processes)
    from imgclf.pipeline.resume import resume_config
    from imgclf.pipeline.resume_checks import check_batch_size

    cut = RunDir(tmp_path / "cut")
    with pytest.raises(ImgclfError, match=r"^devices for --resume .*must be 1 on 1 node\(s\), 1 process in all, as "
                                          r"the run was trained: its checkpoint stopped inside an epoch"):
        check_batch_size(cut, cut.path / "checkpoints" / "last.ckpt",
                         resume_config(cut.path, devices="2", strategy="ddp"), {"devices": "2"})
    steps.clear()
    imgclf.fit(resume=str(tmp_path / "cut"), epochs=1, report=False)  # finishes the epoch at its own batch size
    train_images = RunDir(tmp_path / "cut").read_dataset().sizes["train"]
    assert train_images > 10 and len(steps) == -(-train_images // 2) - 4
    steps.clear()
    imgclf.fit(resume=str(tmp_path / "cut"), epochs=2, batch_size=4, report=False)  # from an epoch's end: accepted
    assert len(steps) == -(-train_images // 4)


def test_a_sweep_is_refused_inside_a_run_and_only_the_runs_own_sweep_reaches_its_card(finished, data, tmp_path):
    from imgclf.pipeline.lr_find import lr_find

    run_dir = _copy(finished, tmp_path)
    with pytest.raises(ImgclfError, match="out.*holds no training run"):
        lr_find({**SMALL, "data": str(data), "out": str(run_dir)}, steps=20)  # refused before any image is read
    assert not (run_dir / "lr_find.json").exists()
    # a folder of runs (a cross-validation's, here with its fold-1 run): its next --folds run refused the sweep's
    # files in it, so the cross-validation could not be run again
    cv = tmp_path / "cv"
    shutil.copytree(finished, cv / "fold-1")
    with pytest.raises(ImgclfError, match=r"^out must be a folder that holds no training run\. .*\(holds runs \(a "
                                          r"cross-validation"):
        lr_find({**SMALL, "data": str(data), "out": str(cv)}, steps=20)
    assert sorted(p.name for p in cv.iterdir()) == ["fold-1"]

    # a sweep's file put there by hand: the run's lr was given, so the card names no sweep
    (run_dir / "lr_find.json").write_text(json.dumps({"suggestion": 0.01, "min_lr": 1e-5, "max_lr": 1.0,
                                                      "steps": 2, "lr": [1e-5, 1.0], "loss": [2.3, None]}))
    imgclf.fit(resume=str(run_dir), epochs=3, report=False)
    assert RunDir(run_dir).read_card().lr_find is None


def test_a_resume_on_a_changed_data_folder_is_refused_before_any_file_is_written(finished, data, tmp_path):
    import os

    run_dir = _copy(finished, tmp_path)
    moved = shutil.copytree(data, tmp_path / "data")  # the run's folder, moved: the same images are accepted
    config = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(config.replace(str(data), str(moved)))
    added = moved / "cat" / "new.png"
    shutil.copy(next((moved / "dog").glob("*.png")), added)
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    with pytest.raises(ImgclfError, match=r"data for --resume .*the images this run was trained on") as info:
        imgclf.fit(resume=str(run_dir), epochs=3, report=False)
    # the folder's change first (it read only as the splits' churn: "train: 20 added, 25 gone; ...")
    assert "(1 image is new (e.g. cat/new.png); the splits drawn from the folder now differ (" in str(info.value)
    assert "--out NEW" in str(info.value)
    os.remove(added)
    # a class added, sorting first: the other classes' ids move up one, and none of their images is relabelled
    shutil.copytree(moved / "dog", moved / "ant")
    with pytest.raises(ImgclfError, match=r"images are new \(e\.g\. ant/") as info:
        imgclf.fit(resume=str(run_dir), epochs=3, report=False)
    assert "labelled otherwise" not in str(info.value) and "relabelled" not in str(info.value), str(info.value)
    shutil.rmtree(moved / "ant")
    shutil.copy(next((moved / "dog").glob("*.png")), added)
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before
    os.remove(added)
    # a listed image still there that no longer decodes is said so, not "gone"
    listed = moved / RunDir(run_dir).read_dataset().splits["train"].files[0]
    good = listed.read_bytes()
    listed.write_bytes(good[:45])
    with pytest.raises(ImgclfError, match=r"1 of the images dataset.json lists cannot be read now \(e.g. "
                                          rf"{listed.parent.name}/{listed.name}: "):
        imgclf.fit(resume=str(run_dir), epochs=3, report=False)
    listed.write_bytes(good)
    imgclf.fit(resume=str(run_dir), epochs=3, report=False)
    assert [r.epoch for r in RunDir(run_dir).read_history()] == [1, 2, 3]


def _swap_a_train_and_a_val_image(run_dir) -> dict[str, set[str]]:
    """dataset.json as another release's draw would have it: one class's first val image swapped with one of its
    training images. Returns the splits' files as recorded now."""
    path = run_dir / "dataset.json"
    record = json.loads(path.read_text())
    train, val = record["splits"]["train"], record["splits"]["val"]
    j = train["labels"].index(val["labels"][0])
    val["files"][0], train["files"][j] = train["files"][j], val["files"][0]
    path.write_text(json.dumps(record))
    return {name: set(split["files"]) for name, split in record["splits"].items()}


def test_a_resume_keeps_the_split_its_run_recorded_whichever_release_drew_it(finished, tmp_path):
    run_dir = _copy(finished, tmp_path)
    recorded = _swap_a_train_and_a_val_image(run_dir)
    imgclf.fit(resume=str(run_dir), epochs=3, report=False)  # a new draw would be refused as another folder
    after = RunDir(run_dir).read_dataset()
    assert {name: set(split.files) for name, split in after.splits.items()} == recorded
    assert [r.epoch for r in RunDir(run_dir).read_history()] == [1, 2, 3]


def test_an_early_stopped_run_resumes_only_with_a_larger_patience_and_then_waits_that_long(data, tmp_path):
    run_dir = tmp_path / "es"
    run = imgclf.fit({**SMALL, "data": str(data), "epochs": 40, "early_stopping": 1, "lr": 0.05,
                      "out": str(run_dir)}, report=False)
    stopped_at = run.epochs_run
    assert run.stopped_reason == "early stopping" and stopped_at < 40
    # it would train one epoch and stop again; a plain --resume is told the patience is the run's own, and how to
    # score it as it is (it named early_stopping=1 as if given)
    with pytest.raises(ImgclfError, match=r"early_stopping .*more than 1, or none: this run stopped early.*\(the "
                                          rf"run's own, from its config.yaml\).* or --epochs {stopped_at} to finish"):
        imgclf.fit(resume=str(run_dir), report=False)
    with pytest.raises(ImgclfError, match=r"Received: early_stopping=1\. Pass"):  # given: no such note
        imgclf.fit(resume=str(run_dir), early_stopping=1, report=False)
    assert len(RunDir(run_dir).read_history()) == stopped_at
    # the advice followed: it trains none, and the card still says it stopped early (it said completed)
    import shutil

    scored = shutil.copytree(run_dir, tmp_path / "scored")
    again = imgclf.fit(resume=str(scored), epochs=stopped_at, report=False)
    assert again.stopped_reason == "early stopping" == RunDir(scored).read_card().training.stopped
    assert len(RunDir(scored).read_history()) == stopped_at
    # patience 4, the restored wait of 1 epoch counted: at least 3 more epochs (Lightning restored the old
    # patience from the checkpoint, and stopped after one)
    imgclf.fit(resume=str(run_dir), early_stopping=4, report=False)
    assert len(RunDir(run_dir).read_history()) >= min(stopped_at + 3, 40)


def test_a_run_whose_patience_ran_out_at_its_last_epoch_trains_on_when_given_more(data, tmp_path):
    """Its patience used up at its last epoch, the run completed (not stopped early); resumed with more epochs it
    trained none, without a word, where it trains on until the patience stops it again."""
    run = imgclf.fit({**SMALL, "data": str(data), "epochs": 2, "early_stopping": 1, "min_delta": 10.0,
                      "out": str(tmp_path / "r")}, report=False)
    assert run.stopped_reason == "completed" and run.epochs_run == 2
    again = imgclf.fit(resume=str(tmp_path / "r"), epochs=4, report=False)
    assert len(RunDir(again.path).read_history()) == 3 and again.stopped_reason == "early stopping"


def test_a_resume_of_a_steps_per_epoch_run_refuses_another_batch_size(data, tmp_path):
    run = imgclf.fit({**SMALL, "data": str(data), "epochs": 1, "steps_per_epoch": 3, "out": str(tmp_path / "r")},
                     report=False)
    with pytest.raises(ImgclfError, match=r"batch_size .*steps_per_epoch its epochs continue one stream"):
        imgclf.fit(resume=str(run.path), epochs=2, batch_size=4, report=False)
    # its place in the stream is counted in epochs of 3 batches: 3 -> 5 skipped 4 batches never trained
    with pytest.raises(ImgclfError, match=r"steps_per_epoch .*must be 3 for this run, as it was trained"):
        imgclf.fit(resume=str(run.path), epochs=2, steps_per_epoch=5, report=False)


def test_a_resume_that_would_stream_a_cached_run_names_the_cache_budget(tmp_path):
    """Near-duplicate groups draw the split only from cached pixels, and streamed images' mean and std are
    measured on fewer of them: a resume that would stream a cached run is refused, saying why (the run keeps its
    recorded split, so not that files were added)."""
    from PIL import Image

    data = make_image_folder(tmp_path / "data", per_class=12)
    for cls in ("cat", "dog"):  # copies: groups the cached split keeps together
        for i, src in enumerate(sorted((data / cls).glob("*.png"))[:4]):
            Image.open(src).save(data / cls / f"copy{i}.png")
    run = imgclf.fit({**SMALL, "data": str(data), "epochs": 1, "out": str(tmp_path / "r")}, report=False)
    assert RunDir(run.path).read_dataset().duplicates is not None
    with pytest.raises(ImgclfError, match=r"^cache_budget for --resume .*would be streamed, and their mean and std "
                                          r"measured on another sample"):
        imgclf.fit(resume=str(run.path), epochs=2, cache_budget="1KB", report=False)


def test_an_img_size_far_above_the_images_and_the_model_is_warned_and_a_bare_time_limit_shows_its_unit(
        tmp_path, capsys):
    data = make_image_folder(tmp_path / "data", per_class=6, size=8)  # 8-pixel images
    imgclf.fit({**SMALL, "data": str(data), "epochs": 1, "img_size": 48, "time_limit": "30", "progress": True,
                "out": str(tmp_path / "big")}, report=False)
    said = " ".join(capsys.readouterr().err.split())
    assert "warning img_size 48 is 6x the images' own side (8 px, the median)" in said
    assert "up to 1 epoch" in said and "time limit 30s" in said  # the epochs a time limit may cut short
    # at or below the model's own input size (a pretrained network's 224 on small images): no warning
    imgclf.fit({**SMALL, "data": str(data), "epochs": 1, "img_size": 32, "model": "simple_cnn",
                "out": str(tmp_path / "own")}, report=False)
    assert "inventing pixels" not in capsys.readouterr().err


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_a_resume_of_a_planned_schedule_refuses_more_epochs_or_another_batch(data, tmp_path, schedule):
    """onecycle resumed with more epochs crashed ("Tried to step 48 times"), after config.yaml had already taken
    the new count; cosine climbed back up. Both plan the rate over epochs x batches from the start."""
    run = imgclf.fit({**SMALL, "data": str(data), "epochs": 2, "schedule": schedule, "lr": 0.01,
                      "out": str(tmp_path / "run")}, report=False)
    config = (run.path / "config.yaml").read_bytes()
    for setting, value in (("epochs", 3), ("batch_size", 4)):
        with pytest.raises(ImgclfError, match=f"{setting} for --resume .* its {schedule} schedule planned"):
            imgclf.fit(resume=str(run.path), **{setting: value})
        assert (run.path / "config.yaml").read_bytes() == config
    imgclf.fit(resume=str(run.path), epochs=2, report=False)  # the same plan: accepted (it trains nothing more)
    assert [r.epoch for r in RunDir(run.path).read_history()] == [1, 2]


def test_a_planned_schedule_under_a_time_limit_is_warned(data, tmp_path, capsys):
    imgclf.fit({**SMALL, "data": str(data), "epochs": 2, "schedule": "cosine", "time_limit": "10m", "lr": 0.01,
                "out": str(tmp_path / "run")}, report=False)
    assert "schedule cosine plans the learning rate over --epochs (2), whatever the time limit (10m)" in \
        capsys.readouterr().err


def test_a_finished_run_resumed_with_nothing_left_to_train_refuses_a_changed_setting(finished, tmp_path, caplog):
    """--resume RUN --batch-size 32 on a finished run trained no epoch, yet config.yaml and model.json then said
    batch 32 for the whole run. With more epochs the setting applies to them, and is accepted."""
    run_dir = _copy(finished, tmp_path)
    before = {name: (run_dir / name).read_bytes() for name in ("config.yaml", "model.json")}
    for setting, value in (("batch_size", 4), ("augment", "hflip"), ("early_stopping", 3)):
        with pytest.raises(ImgclfError, match=rf"{setting}.*it has trained all 2 of its epochs, so another value "
                                              "would apply to no epoch") as refused:
            imgclf.fit(resume=str(run_dir), **{setting: value})
        if setting == "early_stopping":  # unset in the run: "must be None" read as Python's
            assert "early_stopping for --resume" in str(refused.value) and \
                "must be unset, as this run was trained" in str(refused.value), refused.value
    assert {name: (run_dir / name).read_bytes() for name in before} == before
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        imgclf.fit(resume=str(run_dir), progress=False, report=False)  # nothing changed: accepted, and said
    assert f"{run_dir} has trained all 2 of its epochs: none to train, so it is only scored and reported again " \
           "(--epochs 3 or more trains further)" in caplog.text
    assert len(RunDir(run_dir).read_history()) == 2
    caplog.clear()
    imgclf.fit(resume=str(run_dir), epochs=3, augment="hflip", report=False)
    assert "none to train" not in caplog.text
    assert RunDir(run_dir).read_config().augment == "hflip" and len(RunDir(run_dir).read_history()) == 3


def test_a_run_stopped_by_its_time_limit_resumed_under_it_says_it_trains_nothing(data, tmp_path, caplog):
    """The budget counts the seconds trained before a resume: `--resume RUN` as is trained nothing and scored the
    run again without a word, which read as a resume that had trained. A longer limit trains on, unwarned."""
    run = imgclf.fit({**SMALL, "data": str(data), "epochs": 3, "time_limit": "0.01s",
                      "out": str(tmp_path / "run")}, progress=False, report=False)
    assert RunDir(run.path).read_card().training.stopped == "time limit (0.01s)"
    trained = len(RunDir(run.path).read_history())
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        imgclf.fit(resume=str(run.path), progress=False, report=False)
    assert f"{run.path} has spent its time limit (0.01s: " in caplog.text
    assert "none left to train, so it is only scored and reported again (a longer --time-limit trains further)" \
        in caplog.text
    assert len(RunDir(run.path).read_history()) == trained
    # a probe-sized run (the `fast` recipe): the budget counted the probe's seconds, which train_seconds leaves out
    card = RunDir(run.path).read_card()
    probed = card.training.model_copy(update={"train_seconds": 0.004, "time_budget": {
        **(card.training.time_budget or {}), "before_training_seconds": 0.02}})
    RunDir(run.path).write_card(card.model_copy(update={"training": probed}))
    # the epochs' own seconds (which a limit counts too) as short, so that only the probe's pass the limit
    history = RunDir(run.path).read_history()
    RunDir(run.path).write_history([row.model_copy(update={"seconds": 0.001}) for row in history])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        imgclf.fit(resume=str(run.path), progress=False, report=False)
    assert f"{run.path} has spent its time limit (0.01s: 0.0" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        imgclf.fit(resume=str(run.path), time_limit="1h", progress=False, report=False)
    assert "spent its time limit" not in caplog.text and len(RunDir(run.path).read_history()) == 3


def test_a_resume_warns_of_the_evaluations_scored_with_the_weights_before(finished, tmp_path, caplog):
    """evaluations/ kept the earlier weights' scores beside the resumed run's without a word (calibrate warned)."""
    import logging

    run_dir = _copy(finished, tmp_path)
    imgclf.evaluate(run_dir, split="val")
    weights = (run_dir / "model.safetensors").read_bytes()
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        imgclf.fit(resume=str(run_dir), report=False)  # no epoch to train: the same weights, nothing stale
    assert "none to train" in caplog.text and "scored with the weights before" not in caplog.text
    # the BatchNorm statistics too: the pass recomputing them read another epoch's batches of a resumed loader
    assert (run_dir / "model.safetensors").read_bytes() == weights
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        imgclf.fit(resume=str(run_dir), epochs=3, report=False)
    assert "1 evaluation of this run (evaluations/val) was scored with the weights before this resume: run imgclf " \
           "evaluate again to update it" in caplog.text


def test_a_time_limit_first_given_on_resume_counts_the_epochs_trained_before_it(data, tmp_path, caplog):
    """A limit kept across resumes counts every second trained; one first given on --resume counted only the new
    process's, so the same `--epochs 100 --time-limit 6s` trained another epoch on one run and nothing on another."""
    run = imgclf.fit({**SMALL, "data": str(data), "epochs": 2, "out": str(tmp_path / "run")}, progress=False,
                     report=False)
    assert RunDir(run.path).read_card().training.time_budget is None  # trained without a limit
    with caplog.at_level(logging.WARNING, logger="imgclf"):
        resumed = imgclf.fit(resume=str(run.path), epochs=50, time_limit="0.01s", progress=False, report=False)
    assert f"{run.path} has spent its time limit (0.01s: " in caplog.text
    assert len(RunDir(run.path).read_history()) == 2  # no epoch trained on a limit already used up
    assert resumed.stopped_reason == "time limit (0.01s)"


def _said(call) -> str:
    """The user's error `call` raises, from a daemon thread: a call that loops for ever fails the test, not the
    suite (a dangling runs/ link kept make_free_dir spinning at 96 % CPU)."""
    import threading

    out = {}

    def run():
        try:
            call()
            out["said"] = "no error"
        except ImgclfError as exc:
            out["said"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - what the test reports
            out["said"] = f"internal: {type(exc).__name__}: {exc}"

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "still running after 20 s"
    return out["said"]


def test_an_out_through_a_dangling_or_looping_link_or_too_long_a_name_is_the_users_error(tmp_path, monkeypatch):
    """A cluster's purged scratch left runs/ a dangling link: training hung for ever; --out through such a link, a
    link to itself or a 300-character name was an internal FileExistsError or OSError."""
    from imgclf.io import make_free_dir, writable_folder

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").symlink_to(tmp_path / "gone_scratch")
    (tmp_path / "loopy").symlink_to(tmp_path / "loopy")
    said = _said(lambda: make_free_dir("runs", "simple_cnn"))
    assert said.startswith("out must be a folder to write into") and f"(a link to {tmp_path / 'gone_scratch'}, " \
        "which does not exist)" in said, said
    for out in ("runs", "runs/sub", "loopy", "loopy/x"):
        said = _said(lambda: writable_folder("out", out))
        assert said.startswith("out must be a folder to write into"), (out, said)
        assert ("leads back to itself" if out.startswith("loopy") else "which does not exist") in said, (out, said)
    (tmp_path / "runs2").mkdir()
    for out in ("runs2/" + "a" * 300, "runs3/" + "a" * 300 + "/x"):  # in a folder there, or still to make
        said = _said(lambda: writable_folder("out", out))
        assert said.startswith("out must be a folder to write into") and "File name too long" in said, said
    from typer.testing import CliRunner

    from imgclf.cli import app

    for words in (["evaluate", "runs2/" + "a" * 300], ["train", "--resume", "runs2/" + "a" * 300]):
        result = CliRunner().invoke(app, words)
        said = " ".join(result.output.split())
        assert result.exit_code == 2 and "File name too long" in said and "internal error" not in said, said
