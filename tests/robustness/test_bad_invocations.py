"""No traceback for anything a user can cause (issue 24, item 4).

One table of bad invocations over every command: numbers out of range or not numbers at all, files where
folders are expected and the reverse, garbage and crafted files in every place a command reads one. Each must
exit with status 2 and one line on stderr that names the argument and echoes the value, with no traceback.
Nothing here trains: rows that could train fail before the first epoch.
"""

from __future__ import annotations

import json

import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from conftest import make_image_folder, spoilable_copy
from imgclf.cli import app

GARBAGE = bytes(range(256)) * 8  # not UTF-8, not a zip, not a pickle, not YAML


class _Payload:
    """Unpickling this runs `touch marker`: what a crafted checkpoint would do to a careless loader."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@dataclass
class Where:
    """Paths a row may use; files and run copies are made on demand under the row's own tmp_path."""

    tmp: Path
    data: Path  # a small class-per-folder image tree
    trained: Path  # the session's tiny trained run (never modified)

    @property
    def marker(self) -> Path:
        return self.tmp / "pwned"

    def file(self, name: str = "a-file.txt", content: bytes = b"not a folder\n") -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return str(path)

    def folder(self, name: str = "a-folder") -> str:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def missing(self) -> str:
        return str(self.tmp / "no-such-thing")

    def run(self, name: str = "run", **files: bytes | str | None) -> str:
        """A copy of the trained run with some of its files replaced (bytes/str) or removed (None); keys use
        '__' for '/' (checkpoints__last_ckpt -> checkpoints/last.ckpt, '_' before the suffix -> '.'). Marked as
        spoiled on purpose, so that the walk over every run the suite wrote (tests/test_records.py) skips it."""
        path = self.tmp / name
        if not path.exists():
            spoilable_copy(self.trained, path)
        for key, content in files.items():
            stem, _, suffix = key.replace("__", "/").rpartition("_")
            target = path / f"{stem}.{suffix}"
            if content is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    def trained_run(self) -> str:
        """The session's run itself, for commands that only read it (explain writes its figure elsewhere)."""
        return str(self.trained)

    def truncated(self, relative: str) -> bytes:
        return (self.trained / relative).read_bytes()[: (self.trained / relative).stat().st_size // 2]

    def crafted_pickle(self) -> bytes:
        return pickle.dumps({"state_dict": _Payload(self.marker), "epoch": 1})

    def crafted_zip(self) -> bytes:
        """The payload in torch.save's own format (a zip archive), as a real checkpoint is stored."""
        import io

        import torch

        buffer = io.BytesIO()
        torch.save({"state_dict": {"w": _Payload(self.marker)}, "loops": {}}, buffer)
        return buffer.getvalue()

    def train(self, *args: str) -> list[str]:
        """train on the small tree into a new folder, with `args` added. The tree's generated images are
        near-duplicates of each other, so the group-aware split would warn on stderr before a late error (a
        class_weight file is read once the data is); these rows are about the error line alone."""
        return ["train", str(self.data), "--out", str(self.tmp / "new-run"), "--epochs", "1", "--no-progress",
                "--no-group-duplicates", *args]

    def study(self, *args: str) -> list[str]:
        return ["study", "imbalance", str(self.data), "--out", str(self.tmp / "study"), "--per-class", "4",
                "--rhos", "1,2", "--configs", "none", "--epochs", "1", "--no-progress", "--no-run-reports", *args]

    def audit(self, data: str, *args: str) -> list[str]:
        """audit `data` into a new folder, with `args` added."""
        return ["audit", data, "--out", str(self.tmp / "audit"), *args]

    def subset(self, *args: str) -> list[str]:
        return ["subset", str(self.data), "--out", str(self.tmp / "subset"), "--per-class", "4", "--rho", "2", *args]


@dataclass(frozen=True)
class Row:
    id: str
    args: Callable[[Where], list[str]]
    names: tuple[str, ...]  # what the error line must contain: the argument, the value (a str, or from the paths)
    value: Callable[[Where], str] | None = None  # a value only known once the paths exist (a path)


def row(id: str, args: Callable[[Where], list[str]], *names: str, value: Callable[[Where], str] | None = None) -> Row:
    return Row(id, args, names, value)


ROWS = [
    # --- the command line itself ----------------------------------------------------------------------------
    row("imgclf-unknown-command", lambda w: ["trian", str(w.data)], "trian"),
    row("imgclf-unknown-option", lambda w: ["--verbose"], "--verbose"),
    row("imgclf-unknown-train-option", lambda w: w.train("--epoch", "3"), "--epoch"),
    row("imgclf-missing-option", lambda w: ["subset", str(w.data), "--rho", "2"], "--out"),
    # a switch given a value, as a help that showed `--json <bool>` invited
    row("imgclf-flag-given-a-value", lambda w: ["runs", str(w.tmp), "--json", "true"], "(true)",
        "A flag such as --json takes no value"),
    # --- train: numbers -------------------------------------------------------------------------------------
    row("train-devices-0", lambda w: w.train("--devices", "0"), "devices='0'"),
    # MLflow failed on it deep inside its registry (an internal error), with the run folder already written
    row("train-mlflow-uri-unknown-scheme", lambda w: w.train("--logger", "mlflow", "--mlflow-uri", "bogus://x"),
        "mlflow_uri='bogus://x'", "sqlite"),
    row("train-mlflow-uri-without-mlflow", lambda w: w.train("--mlflow-uri", "sqlite:///x.db"),
        "mlflow_uri='sqlite:///x.db'", "--logger mlflow"),
    row("train-devices-negative", lambda w: w.train("--devices", "-1"), "devices='-1'"),
    # Lightning's own errors, after the data was cached and the run's files written (a retry was refused)
    row("train-accelerator-misspelt", lambda w: w.train("--accelerator", "tpuu"), "accelerator='tpuu'",
        "auto, cpu, cuda, gpu"),
    # Lightning trained bf16-mixed instead, with its own warning, and the card said 16-mixed
    row("train-fp16-on-cpu", lambda w: w.train("--precision", "16-mixed", "--accelerator", "cpu"),
        "precision='16-mixed'", "GPU only"),
    row("train-accelerator-absent", lambda w: w.train("--accelerator", "tpu"), "accelerator='tpu'",
        "one this machine has: auto or "),
    row("train-strategy-misspelt", lambda w: w.train("--strategy", "dpp"), "strategy='dpp'", "Did you mean: ddp"),
    # Lightning's others failed inside training ("internal error ... please report it"), the run folder written
    row("train-strategy-deepspeed", lambda w: w.train("--strategy", "deepspeed"), "strategy='deepspeed'",
        "a Lightning strategy imgclf does not train with"),
    row("lrfind-accelerator-misspelt", lambda w: ["lr-find", str(w.data), "--accelerator", "tpuu", "--out",
                                                  str(w.tmp / "lf")], "accelerator='tpuu'"),
    row("train-devices-text", lambda w: w.train("--devices", "abc"), "devices='abc'"),
    row("train-model-args-width-negative", lambda w: w.train("--model-args", "width=-4"), "model_args.width=-4"),
    row("train-model-args-width-0", lambda w: w.train("--model-args", "width=0"), "model_args.width=0"),
    row("train-model-args-width-text", lambda w: w.train("--model-args", "width=abc"), "model_args.width='abc'"),
    row("train-model-args-width-float", lambda w: w.train("--model-args", "width=2.5"), "model_args.width=2.5"),
    row("train-model-args-dropout-2", lambda w: w.train("--model-args", "dropout=2"), "model_args.dropout=2"),
    row("train-model-args-fast-resnet-width-0",
        lambda w: w.train("--model", "fast_resnet", "--model-args", "width=0"), "fast_resnet", "model_args.width=0"),
    row("train-model-args-bad-json", lambda w: w.train("--model-args", "{width: 4"), "model_args='{width: 4'"),
    # what the fast recipe's probe sets, given by the user too: replaced without a word before
    row("train-fast-width-with-probe", lambda w: w.train("--recipe", "fast", "--model-args", "width=32"),
        "model_args.width=32", "--sizing fixed"),
    row("train-fast-erase-with-probe", lambda w: w.train("--recipe", "fast", "--augment", "hflip,erase=0.3"),
        "augment='hflip,erase=0.3'", "--sizing fixed"),
    # the probe's own timing took the whole budget: 0 epochs, random weights, reported as a completed run
    # the schedule's refusal, then the probe's: two rounds of errors for one wish (no budget)
    row("train-fast-without-a-budget", lambda w: w.train("--recipe", "fast", "--time-limit", "none"),
        "set when schedule=budget and sizing=probe", "--sizing fixed --schedule onecycle --epochs N"),
    row("train-fast-budget-shorter-than-the-probe", lambda w: w.train("--recipe", "fast", "--time-limit", "0.01s"),
        "time_limit='0.01s'", "at least 5s when sizing=probe", "--sizing fixed"),
    row("train-fast-ema-with-probe", lambda w: w.train("--recipe", "fast", "--ema", "0.999"), "ema=0.999",
        "--sizing fixed"),
    row("train-epochs-0", lambda w: w.train("--epochs", "0"), "epochs=0"),
    row("train-epochs-negative", lambda w: w.train("--epochs", "-3"), "epochs=-3"),
    row("train-epochs-text", lambda w: w.train("--epochs", "abc"), "--epochs='abc'"),
    # --- train: trust (issue 21) ----------------------------------------------------------------------------
    row("train-calibrate-bogus", lambda w: w.train("--calibrate", "bogus"), "calibrate", "'bogus'", "temperature"),
    row("train-unknown-acceptance-1.5", lambda w: w.train("--unknown-acceptance", "1.5"), "unknown_acceptance=1.5"),
    row("train-unknown-acceptance-0", lambda w: w.train("--unknown-acceptance", "0"), "unknown_acceptance=0"),
    row("train-unknown-detector-knn", lambda w: w.train("--unknown-detector", "knn"), "unknown_detector", "'knn'",
        "mahalanobis"),
    row("train-batch-size-0", lambda w: w.train("--batch-size", "0"), "batch_size=0"),
    row("train-lr-0", lambda w: w.train("--lr", "0"), "lr=0"),
    row("train-lr-text", lambda w: w.train("--lr", "fast"), "lr='fast'", "auto"),
    # --- --lr auto and lr-find (issue 22) -------------------------------------------------------------------
    row("train-lr-auto-features-only", lambda w: w.train("--lr", "auto", "--features-only"), "lr='auto'",
        "features_only"),
    row("train-lr-auto-devices-2", lambda w: w.train("--lr", "auto", "--devices", "2"), "lr='auto'", "devices"),
    row("resume-lr-auto", lambda w: ["train", "--resume", w.run(), "--lr", "auto", "--no-progress"], "lr='auto'",
        "resume"),
    row("lrfind-steps-3", lambda w: ["lr-find", str(w.data), "--out", str(w.tmp / "lf"), "--steps", "3"],
        "steps=3"),
    row("lrfind-end-below-start", lambda w: ["lr-find", str(w.data), "--out", str(w.tmp / "lf"), "--start-lr", "1",
                                             "--end-lr", "0.1"], "end_lr (--end-lr) must be above start_lr",
        "start_lr=1.0"),
    # settings of a training run: accepted and ignored (schedule onecycle moved the suggestion 25x)
    row("lrfind-schedule", lambda w: ["lr-find", str(w.data), "--out", str(w.tmp / "lf"), "--schedule", "onecycle"],
        "schedule='onecycle'", "unset for lr-find"),
    row("lrfind-time-limit", lambda w: ["lr-find", str(w.data), "--out", str(w.tmp / "lf"), "--time-limit", "1s"],
        "time_limit='1s'", "unset for lr-find"),
    row("lrfind-epochs", lambda w: ["lr-find", str(w.data), "--out", str(w.tmp / "lf"), "--epochs", "3"],
        "epochs=3", "unset for lr-find"),
    row("lrfind-missing-data", lambda w: ["lr-find", w.missing(), "--out", str(w.tmp / "lf"), "--steps", "20"],
        "data", value=lambda w: w.missing()),
    # --- tune (issue 22 item 3) -------------------------------------------------------------------------------
    # each process ran the search's bookkeeping: the second found the first's study.db, and both were killed
    row("tune-on-two-devices", lambda w: ["tune", str(w.data), "--trials", "2", "--devices", "2", "--out",
                                         str(w.tmp / "t")],
        "devices must be 1 for tune", "OUT/best.yaml --devices N"),
    # a strategy that starts its processes inside fit() trained every process on rank 0's share, its card empty
    row("train-ddp-spawn", lambda w: w.train("--devices", "2", "--strategy", "ddp_spawn", "--accelerator", "cpu"),
        "strategy='ddp_spawn'", "Pass --strategy ddp"),
    row("train-ddp-fork", lambda w: w.train("--devices", "2", "--strategy", "ddp_fork", "--accelerator", "cpu"),
        "strategy='ddp_fork'"),
    # on one device: its one forked process hung for ever
    row("train-ddp-fork-one-device", lambda w: w.train("--strategy", "ddp_fork"), "strategy='ddp_fork'",
        "Pass --strategy ddp"),
    # the second process summarised the folds while the first still evaluated the last: both were killed
    row("train-folds-on-two-devices", lambda w: w.train("--folds", "2", "--devices", "2", "--accelerator", "cpu"),
        "devices must be 1 for a whole cross-validation", "--folds 2 --fold I"),
    row("tune-trials-0", lambda w: ["tune", str(w.data), "--trials", "0", "--out", str(w.tmp / "t")], "trials=0"),
    row("tune-resume-without-out", lambda w: ["tune", str(w.data), "--trials", "2", "--resume"], "resume=True",
        "--out"),
    row("tune-space-missing", lambda w: ["tune", str(w.data), "--trials", "2", "--space", w.missing(), "--out",
                                         str(w.tmp / "t")], "space", value=lambda w: w.missing()),
    row("tune-space-unknown-field", lambda w: ["tune", str(w.data), "--trials", "2", "--space",
                                               w.file("space.yaml", b"lrr: [0.1, 0.2]\n"), "--out", str(w.tmp / "t")],
        "space field='lrr'", "lr"),
    # every trial failed on it, ten of them, before the search gave up
    row("tune-space-model-arg-the-model-lacks",
        lambda w: ["tune", str(w.data), "--trials", "2", "--model", "model_s", "--space",
                   w.file("space.yaml", b"model_args.width: [8, 16]\n"), "--out", str(w.tmp / "t")],
        "space field='model_args.width'", "model_args.conv_l2"),
    row("train-img-size-0", lambda w: w.train("--img-size", "0"), "img_size=0"),
    row("train-img-size-negative", lambda w: w.train("--img-size", "-16"), "img_size=-16"),
    row("train-val-split-negative", lambda w: w.train("--val-split", "-0.1"), "val_split=-0.1"),
    row("train-val-split-1", lambda w: w.train("--val-split", "1"), "val_split=1"),
    row("train-num-workers-negative", lambda w: w.train("--num-workers", "-1"), "num_workers=-1"),
    row("train-time-limit-0", lambda w: w.train("--time-limit", "0"), "time_limit='0'"),
    row("train-time-limit-negative", lambda w: w.train("--time-limit", "-5m"), "time_limit='-5m'"),
    row("train-seed-negative", lambda w: w.train("--seed", "-1"), "seed=-1"),
    # numpy's bound: Lightning's seed_everything failed on it with an internal error
    row("train-seed-too-large", lambda w: w.train("--seed", "4294967296"), "seed=4294967296", "from 0 to 4,294,967,295"),
    row("train-early-stopping-negative", lambda w: w.train("--early-stopping", "-2"), "early_stopping=-2"),
    row("train-lr-factor-0", lambda w: w.train("--lr-factor", "0"), "lr_factor=0"),
    row("train-num-nodes-0", lambda w: w.train("--num-nodes", "0"), "num_nodes=0"),
    row("train-cache-budget-negative", lambda w: w.train("--cache-budget", "-4GB"), "cache_budget='-4GB'"),
    row("train-steps-per-epoch-0", lambda w: w.train("--steps-per-epoch", "0"), "steps_per_epoch=0",
        "from 1 to 10,000,000"),
    row("train-steps-per-epoch-text", lambda w: w.train("--steps-per-epoch", "all"), "--steps-per-epoch='all'",
        "integer"),
    row("train-val-steps-negative", lambda w: w.train("--val-steps", "-25"), "val_steps=-25", "from 1 to 10,000,000"),
    # --- train: k-fold (issue 22) ---------------------------------------------------------------------------
    row("train-folds-1", lambda w: w.train("--folds", "1"), "folds=1", "from 2 to 100"),
    # both bounds at once: it said "less than 1" for 1.5, then "greater than 0" for 0
    row("calibrate-acceptance-above-1", lambda w: ["calibrate", w.run(), "--unknown-acceptance", "1.5"],
        "unknown_acceptance", "must be greater than 0 and less than 1"),
    row("train-folds-0", lambda w: w.train("--folds", "0"), "folds=0", "from 2 to 100"),
    row("train-folds-above-smallest-class", lambda w: w.train("--folds", "9"), "folds=9", "at most 7"),
    row("train-fold-without-folds", lambda w: w.train("--fold", "2"), "fold=2", "unset without folds"),
    row("train-fold-above-folds", lambda w: w.train("--folds", "3", "--fold", "4"), "fold=4", "between 1 and folds"),
    # --- train: choosing the data ---------------------------------------------------------------------------
    row("train-classes-unknown", lambda w: w.train("--classes", "cat,dgo"), "classes='dgo'",
        "one of {cat, dog, fox, owl}", "Did you mean: dog"),
    row("train-drop-classes-unknown", lambda w: w.train("--drop-classes", "disgust"), "drop_classes='disgust'",
        "one of {cat, dog, fox, owl}"),
    row("train-classes-leave-one", lambda w: w.train("--classes", "cat"), "classes=['cat']", "at least 2 classes"),
    row("train-classes-empty-name", lambda w: w.train("--classes", "cat,,dog"), "classes='cat,,dog'",
        "class folder names"),
    row("train-classes-and-drop-classes", lambda w: w.train("--classes", "cat,dog", "--drop-classes", "fox"),
        "drop_classes=['fox']", "classes=['cat', 'dog']", "unset when classes is set"),
    row("train-per-class-max-0", lambda w: w.train("--per-class-max", "0"), "per_class_max=0", "a number >= 1"),
    row("train-per-class-max-text", lambda w: w.train("--per-class-max", "many"), "per_class_max='many'",
        "train=2999,test=599"),
    row("train-per-class-max-unknown-split", lambda w: w.train("--per-class-max", "trian=5"),
        "per_class_max split='trian'", "one of {test, train, val}"),
    row("train-per-class-max-split-negative", lambda w: w.train("--per-class-max", "train=-3"),
        "per_class_max train=-3", ">= 1"),
    row("train-data-twice", lambda w: ["train", str(w.data), str(w.data), "--out", str(w.tmp / "r")], "data=",
        "distinct folders", "the same folder as"),
    row("train-data-inside-another", lambda w: ["train", str(w.data), str(w.data / "cat"), "--out", str(w.tmp / "r")],
        "data=", "none inside another"),
    # --- train: files and folders ---------------------------------------------------------------------------
    row("train-out-is-a-file", lambda w: ["train", str(w.data), "--out", w.file()], "out",
        value=lambda w: str(w.tmp / "a-file.txt")),
    row("train-out-empty", lambda w: ["train", str(w.data), "--out", ""], "out=''", "left out for runs/"),
    row("train-out-blank", lambda w: ["train", str(w.data), "--out", "  "], "out='  '", "left out for runs/"),
    row("train-out-inside-a-file", lambda w: ["train", str(w.data), "--out", str(Path(w.file()) / "r")], "out",
        value=lambda w: str(w.tmp / "a-file.txt" / "r")),
    row("train-data-is-a-file", lambda w: ["train", w.file(), "--out", str(w.tmp / "r")], "data",
        value=lambda w: str(w.tmp / "a-file.txt")),
    row("train-data-is-an-empty-folder", lambda w: ["train", w.folder(), "--out", str(w.tmp / "r")], "data",
        value=lambda w: str(w.tmp / "a-folder")),
    row("train-config-not-a-mapping", lambda w: w.train("--config", w.file("c.yaml", b"- 1\n- 2\n")), "config",
        value=lambda w: str(w.tmp / "c.yaml")),
    row("train-config-binary", lambda w: w.train("--config", w.file("c.yaml", GARBAGE)), "config",
        value=lambda w: str(w.tmp / "c.yaml")),
    row("train-config-is-a-folder", lambda w: w.train("--config", w.folder()), "config",
        value=lambda w: str(w.tmp / "a-folder")),
    row("train-config-bad-setting-value", lambda w: w.train("--config", w.file("c.yaml", b"batch_size: [1, 2]\n")),
        "batch_size=[1, 2]"),
    row("train-config-devices-0", lambda w: w.train("--config", w.file("c.yaml", b"devices: 0\n")), "devices=0"),
    row("train-class-weight-garbage-json", lambda w: w.train("--class-weight", w.file("w.json", GARBAGE)),
        "class_weight", value=lambda w: str(w.tmp / "w.json")),
    # its weights were read with float(): a word was an internal error, a negative weight trained, zeros gave NaN
    *[row(f"train-class-weight-{kind}", lambda w, weight=weight: w.train("--class-weight", w.file(
        "w.json", json.dumps({"cat": 1, "dog": 1, "fox": 1, "owl": weight}).encode())),
        "class_weight", "finite numbers above 0", f"'owl': {weight!r}", value=lambda w: str(w.tmp / "w.json"))
      for kind, weight in (("word", "heavy"), ("negative", -1), ("zero", 0), ("boolean", True), ("huge", 10 ** 400))],
    row("lrfind-with-folds", lambda w: ["lr-find", str(w.data), "--folds", "3"], "folds", "unset for lr-find"),
    row("lrfind-with-logger", lambda w: ["lr-find", str(w.data), "--logger", "csv"], "logger", "unset for lr-find"),
    row("lrfind-with-fold", lambda w: ["lr-find", str(w.data), "--fold", "1"], "fold", "unset for lr-find"),
    # --devices 2 blamed --lr ("a number on several devices"); --lr was no option, and the parser offered --min-lr
    row("lrfind-on-two-devices", lambda w: ["lr-find", str(w.data), "--devices", "2"], "devices",
        "1 for lr-find: the sweep runs in one process"),
    row("lrfind-with-lr", lambda w: ["lr-find", str(w.data), "--lr", "0.1"], "lr must be unset for lr-find",
        "--start-lr and --end-lr"),
    row("lrfind-with-mlflow-uri", lambda w: ["lr-find", str(w.data), "--mlflow-uri", "sqlite:///m.db"], "mlflow_uri",
        "unset for lr-find"),
    # --- train --resume: garbage and crafted run files -------------------------------------------------------
    # both were dropped without a word: the run resumed with its stored config, nothing replaced
    row("resume-with-overwrite", lambda w: ["train", "--resume", w.run(), "--overwrite"], "overwrite must be left unset",
        "a resumed run continues its own folder"),
    row("resume-with-config", lambda w: ["train", "--resume", w.run(), "--config", w.file("c.yaml", b"epochs: 3\n")],
        "config_file (--config)", "keeps its stored config.yaml"),
    row("resume-garbage-last-ckpt", lambda w: ["train", "--resume", w.run(checkpoints__last_ckpt=GARBAGE)],
        "last.ckpt", value=lambda w: str(w.tmp / "run")),
    row("resume-truncated-last-ckpt",
        lambda w: ["train", "--resume", w.run(checkpoints__last_ckpt=w.truncated("checkpoints/last.ckpt"))],
        "last.ckpt", value=lambda w: str(w.tmp / "run")),
    row("resume-crafted-last-ckpt", lambda w: ["train", "--resume", w.run(checkpoints__last_ckpt=w.crafted_pickle())],
        "last.ckpt", value=lambda w: str(w.tmp / "run")),
    row("resume-crafted-torch-archive", lambda w: ["train", "--resume", w.run(checkpoints__last_ckpt=w.crafted_zip())],
        "last.ckpt", "weights-only", value=lambda w: str(w.tmp / "run")),
    row("resume-garbage-best-safetensors",
        lambda w: ["train", "--resume", w.run(checkpoints__best_safetensors=GARBAGE)],
        "best.safetensors", value=lambda w: str(w.tmp / "run")),
    row("resume-truncated-best-safetensors",
        lambda w: ["train", "--resume",
                   w.run(checkpoints__best_safetensors=w.truncated("checkpoints/best.safetensors"))],
        "best.safetensors", value=lambda w: str(w.tmp / "run")),
    row("resume-garbage-config-yaml", lambda w: ["train", "--resume", w.run(config_yaml=GARBAGE)], "config.yaml",
        value=lambda w: str(w.tmp / "run")),
    row("resume-config-yaml-not-a-mapping", lambda w: ["train", "--resume", w.run(config_yaml="just text\n")],
        "config.yaml", value=lambda w: str(w.tmp / "run")),
    row("resume-a-file", lambda w: ["train", "--resume", w.file()], "resume",
        value=lambda w: str(w.tmp / "a-file.txt")),
    row("resume-epochs-0", lambda w: ["train", "--resume", w.run(), "--epochs", "0"], "epochs=0"),
    # the run trained 5 epochs: fewer, or another model, cannot continue its checkpoint (Lightning refused them
    # only after config.yaml held the new value)
    row("resume-fewer-epochs", lambda w: ["train", "--resume", w.run(), "--epochs", "2"], "epochs=2", "at least 5"),
    row("resume-other-model", lambda w: ["train", "--resume", w.run(), "--model", "fast_resnet"],
        "model='fast_resnet'", "'simple_cnn'"),
    # --- evaluate -------------------------------------------------------------------------------------------
    row("evaluate-run-is-a-file", lambda w: ["evaluate", w.file()], "run", value=lambda w: str(w.tmp / "a-file.txt")),
    row("evaluate-garbage-model-json", lambda w: ["evaluate", w.run(model_json=GARBAGE)], "model.json",
        value=lambda w: str(w.tmp / "run")),
    row("evaluate-model-json-a-list", lambda w: ["evaluate", w.run(model_json="[1, 2]")], "model.json",
        value=lambda w: str(w.tmp / "run")),
    row("evaluate-garbage-weights", lambda w: ["evaluate", w.run(model_safetensors=GARBAGE)], "model.safetensors",
        value=lambda w: str(w.tmp / "run")),
    row("evaluate-garbage-dataset-json", lambda w: ["evaluate", w.run(dataset_json=GARBAGE)], "dataset.json",
        value=lambda w: str(w.tmp / "run")),
    row("evaluate-split-unknown", lambda w: ["evaluate", w.run(), "--split", "validation"], "split='validation'"),
    row("evaluate-data-is-a-file", lambda w: ["evaluate", w.run(), "--data", w.file()], "data",
        value=lambda w: str(w.tmp / "a-file.txt")),
    # --- predict --------------------------------------------------------------------------------------------
    row("predict-top-k-0", lambda w: ["predict", w.run(), str(w.data), "--top-k", "0"], "--top-k='0'"),
    row("predict-top-k-negative", lambda w: ["predict", w.run(), str(w.data), "--top-k", "-2"], "--top-k='-2'"),
    row("predict-top-k-text", lambda w: ["predict", w.run(), str(w.data), "--top-k", "all"], "--top-k='all'"),
    # what is close to a run is named for what it is: "not a run: no model.json" told a user who gave model.json
    row("predict-run-given-as-its-model-json", lambda w: ["predict", w.run() + "/model.json", str(w.data)],
        "a file of the run", "give that folder"),
    row("calibrate-a-cross-validation-folder", lambda w: ["calibrate", str(Path(w.file("cv/folds.json", b"{}")).parent)],
        "a cross-validation folder: its runs are", "fold-1"),
    # a flag given a value: the word became a second data folder, and the error sent the user to their data
    row("train-overwrite-no", lambda w: ["train", str(w.data), "--overwrite", "no"], "data='no'",
        "takes no value: leave out 'no'"),
    row("predict-backend-tf", lambda w: ["predict", w.run(), str(w.data), "--backend", "tf"], "backend='tf'",
        "{onnx, torch}"),
    # two wrong arguments: the first one's error (the run), as the command reads them
    row("predict-missing-run-and-image", lambda w: ["predict", w.missing(), w.missing() + ".png"], "run",
        value=lambda w: w.missing()),
    row("explain-missing-run-and-image", lambda w: ["explain", w.missing(), w.missing() + ".png"], "run",
        value=lambda w: w.missing()),
    row("predict-format-xml", lambda w: ["predict", w.run(), str(w.data), "--format", "xml"], "format='xml'"),
    row("predict-unknown-maybe", lambda w: ["predict", w.run(), str(w.data), "--unknown", "maybe"],
        "unknown='maybe'", "off"),
    row("predict-unknown-statistics-missing",
        lambda w: ["predict", w.run(unknown_safetensors=None), str(w.data)], "unknown.safetensors", "run"),
    row("predict-unknown-statistics-garbage",
        lambda w: ["predict", w.run(unknown_safetensors=GARBAGE), str(w.data)], "unknown.safetensors", "run"),
    row("predict-output-is-a-folder", lambda w: ["predict", w.run(), str(w.data), "--output", w.folder()], "output",
        value=lambda w: str(w.tmp / "a-folder")),
    row("predict-onnx-not-exported", lambda w: ["predict", w.run(), str(w.data), "--backend", "onnx"], "model.onnx",
        value=lambda w: str(w.tmp / "run")),
    # a folder that takes no file (/proc, for any user): refused before predicting, not an internal error after
    row("predict-output-where-no-file-can-be-made",
        lambda w: ["predict", w.run(), str(w.data), "--output", "/proc/imgclf-p.csv"], "output", "takes no new file",
        value=lambda w: "/proc/imgclf-p.csv"),
    row("predict-output-inside-a-file", lambda w: ["predict", w.run(), str(w.data), "--output",
                                                   str(Path(w.file()) / "p.csv")], "output",
        value=lambda w: str(w.tmp / "a-file.txt" / "p.csv")),
    row("predict-folder-without-images", lambda w: ["predict", w.run(), w.folder()], "images", "no image found",
        value=lambda w: str(w.tmp / "a-folder")),
    # a quoted pattern reaches the program unexpanded: said so, not only "not found"
    row("predict-quoted-pattern", lambda w: ["predict", w.run(), str(w.data / "cat" / "*.png")], "images",
        "A quoted pattern is not expanded"),
    # every image unreadable: the error rows are printed, and the status tells a script nothing was predicted
    row("predict-every-image-unreadable", lambda w: ["predict", w.run(), w.file("broken.png", GARBAGE)],
        "images must be images of which at least one can be read", "1 file(s), none readable",
        "Each file's reason is printed with it"),
    # written to a file: the reasons are there, not "printed with it"
    row("predict-every-image-unreadable-to-a-file",
        lambda w: ["predict", w.run(), w.file("broken.png", GARBAGE), "-o", str(w.tmp / "p.csv")],
        "1 file(s), none readable", "Each file's reason is in"),
    row("predict-run-is-a-file", lambda w: ["predict", w.file(), str(w.data)], "run",
        value=lambda w: str(w.tmp / "a-file.txt")),
    row("predict-truncated-weights",
        lambda w: ["predict", w.run(model_safetensors=w.truncated("model.safetensors")), str(w.data)],
        "model.safetensors", value=lambda w: str(w.tmp / "run")),
    # --- explain --------------------------------------------------------------------------------------------
    row("explain-label-not-a-class", lambda w: ["explain", w.trained_run(), str(w.data), "--label", "Cat"],
        "label='Cat'", "cat"),
    row("explain-output-not-png", lambda w: ["explain", w.trained_run(), str(w.data), "-o", str(w.tmp / "why.jpg")],
        "output", ".png", value=lambda w: str(w.tmp / "why.jpg")),
    row("explain-output-is-a-folder", lambda w: ["explain", w.trained_run(), str(w.data), "-o", w.folder("a.png")],
        "output", "a folder", value=lambda w: str(w.tmp / "a.png")),
    row("explain-missing-image", lambda w: ["explain", w.trained_run(), w.missing()], "images",
        value=lambda w: str(w.tmp / "no-such-thing")),
    row("explain-max-images-0", lambda w: ["explain", w.trained_run(), str(w.data), "--max-images", "0"],
        "--max-images='0'"),
    row("explain-every-image-unreadable", lambda w: ["explain", w.trained_run(), w.file("broken.png", GARBAGE),
                                                     "-o", str(w.tmp / "why.png")],
        "images must be images of which at least one can be read", "1 file(s), none readable"),
    # --- export ---------------------------------------------------------------------------------------------
    # the format as a second positional argument: the option whose help names it
    row("export-format-as-an-argument", lambda w: ["export", w.run(), "onnx"], "(onnx)", "Did you mean --format onnx?"),
    row("serve-backend-as-an-argument", lambda w: ["serve", w.run(), "onnx"], "(onnx)",
        "Did you mean --backend onnx?"),  # its help reads "torch, or onnx: onnxruntime over ..."
    row("runs-sort-column-as-an-argument", lambda w: ["runs", str(w.tmp), "name"], "Did you mean --sort name?"),
    row("export-format-tflite", lambda w: ["export", w.run(), "--format", "tflite"], "format='tflite'"),
    row("export-out-is-a-file", lambda w: ["export", w.run(), "--out", w.file()], "out",
        value=lambda w: str(w.tmp / "a-file.txt")),
    row("export-garbage-model-json", lambda w: ["export", w.run(model_json=b"{\"architecture\": ")], "model.json",
        value=lambda w: str(w.tmp / "run")),
    # --- serve: every row fails before the port is bound ----------------------------------------------------
    row("serve-port-negative", lambda w: ["serve", w.run(), "--port", "-1"], "--port='-1'"),
    row("serve-port-too-big", lambda w: ["serve", w.run(), "--port", "70000"], "--port='70000'"),
    row("serve-port-text", lambda w: ["serve", w.run(), "--port", "http"], "--port='http'"),
    row("serve-max-upload-0", lambda w: ["serve", w.run(), "--max-upload-mb", "0"], "--max-upload-mb='0'"),
    # int(inf * 10**6) was an OverflowError, reported as an internal error
    row("serve-max-upload-inf", lambda w: ["serve", w.run(), "--max-upload-mb", "inf"], "--max-upload-mb='inf'"),
    row("serve-max-files-0", lambda w: ["serve", w.run(), "--max-files", "0"], "--max-files='0'"),
    row("serve-threads-0", lambda w: ["serve", w.run(), "--threads", "0"], "--threads='0'"),
    row("serve-backend-tf", lambda w: ["serve", w.run(), "--backend", "tf"], "backend='tf'"),
    row("serve-backend-tensorrt", lambda w: ["serve", w.run(), "--backend", "tensorrt"], "backend='tensorrt'",
        "{onnx, torch}"),
    row("serve-onnx-not-exported", lambda w: ["serve", w.run(), "--backend", "onnx"], "no export/model.onnx",
        value=lambda w: f"imgclf export {w.tmp / 'run'} --format onnx"),
    row("serve-unknown-maybe", lambda w: ["serve", w.run(), "--unknown", "maybe"], "unknown='maybe'"),
    row("serve-run-missing", lambda w: ["serve", w.missing()], "run", value=lambda w: w.missing()),
    row("serve-garbage-model-json", lambda w: ["serve", w.run(model_json=GARBAGE)], "model.json",
        value=lambda w: str(w.tmp / "run")),
    # --- inspect --------------------------------------------------------------------------------------------
    row("inspect-data-is-a-file", lambda w: ["inspect", w.file()], "data", value=lambda w: str(w.tmp / "a-file.txt")),
    row("inspect-data-missing", lambda w: ["inspect", w.missing()], "data", value=lambda w: w.missing()),
    row("inspect-plots-is-a-file", lambda w: ["inspect", str(w.data), "--plots", w.file()], "plots",
        value=lambda w: str(w.tmp / "a-file.txt")),
    # --- audit ----------------------------------------------------------------------------------------------
    row("audit-data-missing", lambda w: w.audit(w.missing()), "data", value=lambda w: w.missing()),
    row("audit-data-is-a-file", lambda w: w.audit(w.file()), "data", value=lambda w: str(w.tmp / "a-file.txt")),
    row("audit-data-is-an-empty-folder", lambda w: w.audit(w.folder()), "data",
        value=lambda w: str(w.tmp / "a-folder")),
    row("audit-folds-1", lambda w: w.audit(str(w.data), "--folds", "1"), "folds=1", ">= 2"),
    row("audit-folds-text", lambda w: w.audit(str(w.data), "--folds", "many"), "--folds='many'"),
    row("audit-seed-negative", lambda w: w.audit(str(w.data), "--seed", "-1"), "seed=-1", "from 0 to 2**32 - 1"),
    row("audit-img-size-4", lambda w: w.audit(str(w.data), "--img-size", "4"), "img_size=4", "from 8 to 512"),
    row("audit-out-is-a-file", lambda w: ["audit", str(w.data), "--out", w.file()], "out",
        value=lambda w: str(w.tmp / "a-file.txt")),
    row("audit-run-missing", lambda w: w.audit(str(w.data), "--run", w.missing()), "run", value=lambda w: w.missing()),
    row("audit-run-is-a-file", lambda w: w.audit(str(w.data), "--run", w.file()), "run",
        value=lambda w: str(w.tmp / "a-file.txt")),
    row("audit-run-garbage-model-json", lambda w: w.audit(str(w.data), "--run", w.run(model_json=GARBAGE)),
        "model.json", value=lambda w: str(w.tmp / "run")),
    row("audit-img-size-not-the-runs", lambda w: w.audit(str(w.data), "--run", w.run(), "--img-size", "24"),
        "img_size=24", "the run's own size, 16"),
    # --- report ---------------------------------------------------------------------------------------------
    row("report-garbage-metrics-json", lambda w: ["report", w.run(metrics_json=GARBAGE), "--no-explain"],
        "metrics.json", value=lambda w: str(w.tmp / "run")),
    row("report-garbage-history-csv", lambda w: ["report", w.run(history_csv="epoch,oops\nx,y\n"), "--no-explain"],
        "history.csv", value=lambda w: str(w.tmp / "run")),
    row("report-garbage-predictions-csv", lambda w: ["report", w.run(predictions_csv=GARBAGE), "--no-explain"],
        "predictions.csv", value=lambda w: str(w.tmp / "run")),
    row("report-ragged-history-csv", lambda w: ["report", w.run(history_csv=_ragged(w, "history.csv")), "--no-explain"],
        "history.csv", value=lambda w: str(w.tmp / "run")),
    row("report-ragged-predictions-csv",
        lambda w: ["report", w.run(predictions_csv=_ragged(w, "predictions.csv")), "--no-explain"],
        "predictions.csv", value=lambda w: str(w.tmp / "run")),
    row("report-run-is-a-file", lambda w: ["report", w.file()], "run", value=lambda w: str(w.tmp / "a-file.txt")),
    # --- compare --------------------------------------------------------------------------------------------
    row("compare-one-run", lambda w: ["compare", w.run(), "--out", str(w.tmp / "c.html")], "runs",
        value=lambda w: str(w.tmp / "run")),
    # a run with a garbage metrics.json or history.csv is skipped with its reason, as an unfinished one
    # (tests/test_runs.py::test_compare_takes_a_folder_of_runs_and_skips_unreadable_ones)
    row("compare-out-is-a-folder", lambda w: ["compare", w.run("a"), w.run("b"), "--out", w.folder()], "out",
        value=lambda w: str(w.tmp / "a-folder")),
    # --- runs ---------------------------------------------------------------------------------------------
    row("runs-sort-unknown", lambda w: ["runs", str(w.tmp), "--sort", "accuracy"], "sort='accuracy'",
        "val_accuracy", "test_accuracy"),
    row("runs-dir-is-a-file", lambda w: ["runs", w.file()], "folder", value=lambda w: str(w.tmp / "a-file.txt")),
    row("runs-dir-missing", lambda w: ["runs", w.missing()], "folder", value=lambda w: w.missing()),
    # --- models, recipes ------------------------------------------------------------------------------------
    row("models-pattern-matches-nothing", lambda w: ["models", "no_such_model*"], "pattern='no_such_model*'"),
    # timm's backbones are models too (train --model resnet18): the listing that has them is named
    row("models-pattern-of-pretrained-backbones", lambda w: ["models", "res*"], "pattern='res*'",
        "imgclf models --pretrained 'res*'"),
    row("recipes-unknown-name", lambda w: ["recipes", "fast-fmnis"], "recipe='fast-fmnis'"),
    # --- data fetch -----------------------------------------------------------------------------------------
    row("fetch-unknown-name", lambda w: ["data", "fetch", "mnist", "--out", str(w.tmp / "d")], "name='mnist'"),
    row("fetch-out-inside-a-file", lambda w: ["data", "fetch", "digits", "--out", str(Path(w.file()) / "d")], "out",
        value=lambda w: str(w.tmp / "a-file.txt" / "d")),
    row("fetch-out-is-a-file", lambda w: ["data", "fetch", "digits", "--out", w.file()], "out",
        value=lambda w: str(w.tmp / "a-file.txt")),
    # fetched into a folder of other images, the two made one data set (12 classes: the digits, cats and dogs)
    row("fetch-into-a-folder-of-other-images",
        lambda w: ["data", "fetch", "digits", "--out", str(Path(w.file("pets/cats/a.png")).parents[1])], "out",
        "it holds cats", value=lambda w: str(w.tmp / "pets")),
    row("fetch-cifar10-garbage-source",
        lambda w: ["data", "fetch", "cifar10", "--out", str(w.tmp / "d"), "--source", w.file("c.tar.gz", GARBAGE)],
        "source", value=lambda w: str(w.tmp / "c.tar.gz")),
    row("fetch-fashion-mnist-garbage-source",
        lambda w: ["data", "fetch", "fashion-mnist", "--out", str(w.tmp / "d"), "--source", _garbage_idx(w)],
        "source", value=lambda w: str(w.tmp / "idx" / "train-images-idx3-ubyte.gz")),
    row("fetch-fer2013-garbage-csv",
        lambda w: ["data", "fetch", "fer2013", "--out", str(w.tmp / "d"), "--source", w.file("fer.csv", GARBAGE)],
        "source", value=lambda w: str(w.tmp / "fer.csv")),
    # --- subset ---------------------------------------------------------------------------------------------
    row("subset-per-class-0", lambda w: w.subset("--per-class", "0"), "--per-class='0'"),
    row("subset-rho-0", lambda w: w.subset("--rho", "0"), "rho=0"),
    row("subset-rho-negative", lambda w: w.subset("--rho", "-2"), "rho=-2"),
    row("subset-rho-text", lambda w: w.subset("--rho", "high"), "--rho='high'"),
    row("subset-mu-0", lambda w: w.subset("--mu", "0"), "mu=0"),
    row("subset-mu-above-1", lambda w: w.subset("--mu", "1.5"), "mu=1.5"),
    row("subset-seed-negative", lambda w: w.subset("--seed", "-1"), "--seed='-1'"),
    row("subset-mode-copy", lambda w: w.subset("--mode", "copy"), "mode='copy'"),
    row("subset-out-is-a-file", lambda w: ["subset", str(w.data), "--out", w.file(), "--per-class", "4", "--rho", "2"],
        "out", value=lambda w: str(w.tmp / "a-file.txt")),
    row("subset-unknown-minority", lambda w: w.subset("--minority", "cow"), "minority=['cow']"),
    # --- study imbalance ------------------------------------------------------------------------------------
    row("study-per-class-0", lambda w: w.study("--per-class", "0"), "--per-class='0'"),
    row("study-rhos-text", lambda w: w.study("--rhos", "1,abc"), "rhos='1,abc'"),
    row("study-rhos-0", lambda w: w.study("--rhos", "0,3"), "rhos=[0.0, 3.0]"),
    row("study-rhos-negative", lambda w: w.study("--rhos", "-3"), "rhos=[-3.0]"),
    row("study-seeds-text", lambda w: w.study("--seeds", "x"), "seeds='x'"),
    row("study-configs-unknown", lambda w: w.study("--configs", "none,dropout9"), "dropout9"),
    row("study-mu-2", lambda w: w.study("--mu", "2"), "mu=2"),
    row("study-epochs-0", lambda w: w.study("--epochs", "0"), "epochs=0"),
    row("study-model-args-width-0", lambda w: w.study("--model", "simple_cnn", "--model-args", "width=0"),
        "model_args.width=0"),
    row("study-out-is-a-file", lambda w: ["study", "imbalance", str(w.data), "--out", w.file(), "--per-class", "4",
                                          "--rhos", "1,2"], "out", value=lambda w: str(w.tmp / "a-file.txt")),
    # --- demo -----------------------------------------------------------------------------------------------
    row("demo-epochs-0", lambda w: ["demo", "--out", str(w.tmp / "demo"), "--epochs", "0", "--no-progress"],
        "epochs=0"),
    row("demo-epochs-negative", lambda w: ["demo", "--out", str(w.tmp / "demo"), "--epochs", "-1", "--no-progress"],
        "epochs=-1"),
    row("demo-into-a-folder-of-other-images",
        lambda w: ["demo", "--out", str(Path(w.file("pets/cats/a.png")).parents[1]), "--no-progress"], "out",
        "it holds cats", value=lambda w: str(w.tmp / "pets")),
    row("demo-out-is-a-file", lambda w: ["demo", "--out", w.file(), "--no-progress"], "out",
        value=lambda w: str(w.tmp / "a-file.txt")),
]


def _ragged(w: Where, name: str) -> bytes:
    """The run's own CSV with two cells too many on its last line."""
    return (w.trained / name).read_bytes().rstrip(b"\r\n") + b",x,y\r\n"


def _garbage_idx(w: Where) -> str:
    """A fashion-mnist source folder whose four files have the right names and garbage inside."""
    folder = w.tmp / "idx"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes(GARBAGE)
    return str(folder)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("bad-invocations"), classes=("cat", "dog", "fox", "owl"),
                             per_class=8)


@pytest.fixture(autouse=True)
def _never_bind(monkeypatch):
    """A serve row that got as far as binding a port would hang the suite: fail it instead."""
    import uvicorn

    def refuse(*args, **kwargs):
        raise AssertionError("serve reached uvicorn.run: the bad option was not refused before binding")

    monkeypatch.setattr(uvicorn, "run", refuse)


def test_the_table_covers_every_command():
    assert len(ROWS) >= 40 and len({r.id for r in ROWS}) == len(ROWS)
    command = {"resume": "train", "fetch": "data fetch", "study": "study imbalance", "lrfind": "lr-find"}
    covered = {command.get(r.id.split("-")[0], r.id.split("-")[0]) for r in ROWS}
    assert covered == {"imgclf", "train", "evaluate", "predict", "explain", "export", "serve", "inspect", "report",
                       "compare", "models", "recipes", "data fetch", "subset", "study imbalance", "demo", "runs",
                       "lr-find", "audit", "tune", "calibrate"}


@pytest.mark.parametrize("args", [["runs", "{tmp}", "order"], ["runs", "{tmp}", "sort"], ["evaluate", "{run}", "views"]])
def test_a_stray_word_that_no_option_lists_as_a_value_gets_no_suggestion(args, tmp_path, tiny_run):
    """It matched the word anywhere in an option's help: 'order' suggested --reverse order, 'views' --tta views."""
    result = CliRunner().invoke(app, [a.format(tmp=tmp_path, run=tiny_run) for a in args])
    assert result.exit_code == 2 and "Got unexpected extra argument" in result.stderr, result.output
    assert "Did you mean" not in result.stderr


@pytest.mark.parametrize("case", ROWS, ids=[r.id for r in ROWS])
def test_bad_invocation_is_one_line_exit_2(case, tmp_path, small_data, tiny_run):
    where = Where(tmp_path, small_data, tiny_run)
    args = case.args(where)
    result = CliRunner().invoke(app, args)
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, f"exit {result.exit_code}\n{everything}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for name in case.names + ((case.value(where),) if case.value else ()):
        assert name in line, f"{name!r} not in {line!r}"
    assert not where.marker.exists(), "a crafted file ran code"


def test_an_internal_error_is_one_line_with_the_log_path(monkeypatch, tmp_path):
    """Our own bug (not the user's): one line naming the log, exit 1, and the traceback is in that log."""
    import imgclf.recipes

    def broken(*args, **kwargs):
        raise RuntimeError("something of ours broke\nsecond line of the message")

    monkeypatch.setattr(imgclf.recipes, "list_recipes", broken)
    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["recipes"])
    assert result.exit_code == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    match = re.fullmatch(r"internal error: RuntimeError: something of ours broke \(traceback in (.+); "
                         r"please report it\)", lines[0])
    assert match, lines[0]
    log = Path(match.group(1))
    assert log.parent == tmp_path / "cache" / "logs"
    text = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "RuntimeError: something of ours broke" in text
    assert "in broken" in text  # the frame that raised, not only the message


@pytest.mark.parametrize("error, said", [
    (OSError(28, "No space left on device", "/data/runs/r/.report.html.x1.tmp"),
     "the disk holding /data/runs/r has no space left"),
    (OSError(30, "Read-only file system", "/mnt/ro/metrics.json"), "the disk holding /mnt/ro is read-only"),
    (RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull }) (os error 28)"),
     "the disk written to has no space left"),
    (PermissionError(13, "Permission denied", "/data/runs/r/model.safetensors"), None),  # a read, maybe: ours to log
], ids=["full", "read-only", "safetensors-full", "permission-is-not-a-disk-problem"])
def test_a_disk_that_refuses_a_write_is_the_users_one_line_not_an_internal_error(error, said, monkeypatch, tmp_path):
    """A full disk read 'internal error: OSError: [Errno 28] ... please report it'."""
    import imgclf.recipes

    def full(*args, **kwargs):
        raise error

    monkeypatch.setattr(imgclf.recipes, "list_recipes", full)
    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["recipes"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    if said is None:
        assert len(lines) == 1 and lines[0].startswith("internal error: PermissionError"), result.stderr
        return
    assert len(lines) == 1 and lines[0].startswith(f"error: {said} ("), result.stderr
    assert "imgclf train --resume RUN" in lines[0] and "report it" not in lines[0]
    assert not (tmp_path / "cache" / "logs").exists()  # no traceback kept: nothing of ours to report


def test_an_internal_error_whose_log_folder_cannot_be_made_logs_to_the_temp_folder(monkeypatch, tmp_path):
    import tempfile

    import imgclf.recipes

    monkeypatch.setattr(imgclf.recipes, "list_recipes", lambda: 1 / 0)
    (tmp_path / "cache").write_text("a file, so cache/logs cannot be made")
    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    result = CliRunner().invoke(app, ["recipes"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error: ZeroDivisionError: division by zero"), lines
    log = Path(re.search(r"traceback in (.+); please report it", lines[0]).group(1))
    assert log.parent == tmp_path / "tmp" and "ZeroDivisionError" in log.read_text(encoding="utf-8")


def test_a_reader_that_leaves_early_is_not_an_error(tmp_path):
    """`imgclf recipes NAME | head -1`: the pipe closes before the command writes. That is the reader's choice,
    not our bug: no 'internal error' line, no log, and the status a shell gives a process SIGPIPE ended."""
    import subprocess
    import sys

    env = {**os.environ, "IMGCLF_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen([sys.executable, "-m", "imgclf.cli", "recipes", "s3-fer-cnn"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the command's first write: it is still importing
    stderr = process.stderr.read().decode()
    assert process.wait() == 141, stderr
    assert stderr == ""
    assert not (tmp_path / "cache" / "logs").exists()


@pytest.mark.parametrize("epochs", ["0", "-2"])
def test_a_demo_refused_its_epochs_writes_no_digits(tmp_path, epochs):
    """`imgclf demo --epochs 0` wrote the 1,797 digits' PNG tree, then refused the epochs."""
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--epochs", epochs, "--no-progress"])
    assert result.exit_code == 2 and f"epochs={epochs}" in result.output, result.output
    assert not (tmp_path / "demo" / "digits").exists()
