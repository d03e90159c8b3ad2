"""The CLI's help shows every train default and the allowed values of choice settings; --version works."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

import imgclf
from imgclf.cli import app
from imgclf.config import TrainConfig


@pytest.fixture(scope="module")
def train_help() -> str:
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.replace("│", " ").split())


@pytest.mark.parametrize("name", ["epochs", "batch_size", "lr", "optimizer", "schedule", "val_split", "precision"])
def test_train_help_shows_the_default(train_help, name):
    default = TrainConfig.model_fields[name].default
    assert f"[default: {default}]" in train_help, name


@pytest.mark.parametrize("name, choices", [("optimizer", "adam, adamw, sgd"),
                                           ("schedule", "none, plateau, step, cosine, onecycle, budget"),
                                           ("precision", "auto, 32, bf16-mixed, 16-mixed")])
def test_train_help_lists_the_choices(train_help, name, choices):
    assert re.search(rf"--{name} .*?One of: {re.escape(choices)}\.", train_help), name


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"imgclf {imgclf.__version__}"


def test_the_installed_version_is_the_packages_own():
    """pyproject.toml reads the version from imgclf/_version.py (one source), so what pip installed says the same."""
    import importlib.metadata

    assert importlib.metadata.version("imgclf") == imgclf.__version__


def test_models_lists_every_registered_model_without_importing_torch():
    """Importing torch costs over a second; listing seven names must not pay it (issue 26)."""
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from imgclf.cli import app; "
            "r = CliRunner().invoke(app, ['models'], env={'COLUMNS': '200'}); "
            "assert r.exit_code == 0, r.output; print(r.output); "
            "print('TORCH LOADED' if 'torch' in sys.modules else 'no torch')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("no torch"), done.stdout
    from imgclf.models import get_model_info, list_models

    for name in list_models():
        assert name in done.stdout and get_model_info(name).description in done.stdout, name


@pytest.mark.parametrize("argv", [["models"], ["--version"]])
def test_quick_commands_import_neither_numpy_nor_the_training_settings(argv):
    """`imgclf models` and `--version` build no other command's options: train's come from TrainConfig, the
    study's from numpy code (issue 26). Pydantic itself Typer needs for any command with options."""
    import subprocess
    import sys

    code = ("import sys; from imgclf.cli import main; sys.argv = ['imgclf'] + sys.argv[1:]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print(sorted(m for m in ('numpy', 'torch', 'yaml', 'imgclf.config', 'imgclf.study.imbalance', "
            "'pydantic') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    allowed = ["[]"] if argv == ["--version"] else ["[]", "['pydantic']"]
    assert done.stdout.strip().splitlines()[-1] in allowed, done.stdout[-500:]


@pytest.mark.parametrize("argv, flag", [(["data", "fetch", "--help"], "--out"), (["evaluate", "--help"], "--split"),
                                        (["study", "imbalance", "--help"], "--per-class")])
def test_commands_built_when_run_still_show_their_options(argv, flag):
    result = CliRunner().invoke(app, argv, env={"COLUMNS": "250"})
    assert result.exit_code == 0 and flag in result.output, result.output


@pytest.mark.parametrize("pattern", [
    r"Usage: \S+ train \[OPTIONS\] \[DATA\]\.\.\.",  # several folders
    r"DATA .*?several folders are used as one, classes merged by folder name",
    r"--steps-per-epoch .*?Keras' steps_per_epoch.*?continues where the last one stopped .*?limit_train_batches",
    r"--val-steps .*?Keras' validation_steps.*?the same seeded sample of val every epoch",
    r"--classes .*?Keep only these classes",
    r"--drop-classes .*?Leave these classes out.*?Not together with --classes",
    r"--per-class-max .*?each split the run uses \(train, val and test.*?train=N,test=M",
])
def test_train_help_says_how_the_data_is_chosen_and_what_an_epoch_is(train_help, pattern):
    assert re.search(pattern, train_help), pattern


def test_study_help_names_the_network_the_study_trains_by_default(tmp_path):
    """Its training flags come from train's, whose --model default (simple_cnn) is not the study's; the cells'
    config.yaml show which network trained."""
    from conftest import make_image_folder
    from imgclf.io import read_yaml
    from imgclf.study.imbalance import run_imbalance_study

    result = CliRunner().invoke(app, ["study", "imbalance", "--help"], env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})
    text = " ".join(result.output.replace("│", " ").split())
    said = re.search(r"--model .*?\[default: (\w+), S4's network, at its own input size\]", text)
    assert result.exit_code == 0 and said, text
    data = make_image_folder(tmp_path / "data", per_class=4, size=40)
    run_imbalance_study(data, tmp_path / "out", per_class=4, rhos=[1], configs=["none"], run_reports=False,
                        overrides={"epochs": 1, "batch_size": 4, "img_size": 40, "progress": False})
    configs = [read_yaml(p) for p in (tmp_path / "out").rglob("config.yaml")]
    assert configs and {c["model"] for c in configs} == {said.group(1)}


def test_lr_find_help_names_its_own_default_out_folder():
    result = CliRunner().invoke(app, ["lr-find", "--help"], env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})
    text = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 0 and re.search(r"--out .*?\(default: lr-find/<model>-<n>\)", text), text
    assert "runs/<model>-<n>" not in text.split("--out", 1)[1].split("--", 1)[0]
    # the settings of a training run it refuses (tests/robustness: "must be unset for lr-find") are not offered
    offered = {m.group(1) for line in result.output.splitlines()
               if (m := re.match(r"^[\s│]*(?:-\w, )?(--[a-z][a-z-]+)", line))}  # each option's own line
    assert not offered & {"--epochs", "--schedule", "--time-limit", "--early-stopping", "--folds", "--logger",
                          "--ema", "--min-lr", "--lr", "--devices", "--num-nodes"}, offered
    assert {"--model", "--start-lr", "--end-lr", "--steps", "--batch-size"} <= offered


def test_star_import_gives_the_public_functions():
    namespace: dict = {}
    exec("from imgclf import *", namespace)
    assert {"fit", "evaluate", "load", "lr_find", "list_runs", "list_models", "tune"} <= set(namespace)
    assert callable(namespace["lr_find"]) and callable(namespace["list_runs"]) and callable(namespace["tune"])


def test_serve_help_names_both_backends_and_the_default():
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert re.search(r"--backend .*?torch, or onnx: onnxruntime over RUN/export/model\.onnx .*?\[default: torch\]",
                     text), text


def _commands(group, prefix=()):
    """Every command of the CLI as an argv prefix, groups walked (the Click objects Typer builds)."""
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group (Typer ships its own copy of Click's classes)
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_command_takes_dash_h():
    """-h was taken by train, lr-find and tune only (their options are generated); `imgclf inspect -h` was an
    error. Set on the top group, it reaches every command. No flag shows a type: `--json <bool>` had users type
    `--json true`, which failed on the stray word."""
    import typer

    commands = list(_commands(typer.main.get_command(app)))
    assert len(commands) >= 15 and ("inspect",) in commands and ("data", "fetch") in commands
    for argv in [(), *commands]:
        result = CliRunner().invoke(app, [*argv, "-h"], env={"COLUMNS": "250"})
        assert result.exit_code == 0 and "Usage:" in result.output, (argv, result.output[-300:])
        assert "<bool>" not in result.output, argv


def test_help_keeps_square_brackets_that_are_not_markup(train_help):
    assert "Needs imgclf[track] for tensorboard and mlflow" in train_help  # Rich dropped [track] as a tag
    assert re.search(r"--recipe .*?Named recipe whose settings apply", train_help)


@pytest.mark.parametrize("argv", [["train", "--help"], ["tune", "--help"], ["serve", "--help"]])
def test_help_in_an_80_column_terminal_cuts_nothing(argv):
    """Rich's option tables, squeezed into 80 columns, cut 22 cells of train's help with "…" (flag names such as
    --no-group-duplicates and defaults among them); below 120 columns the help is click's, which wraps."""
    result = CliRunner().invoke(app, argv, env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0 and "…" not in result.output and "\\[" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    if argv[0] == "train":
        assert "--group-duplicates / --no-group-duplicates" in result.output and "[default: 0.1]" in result.output
    wide = CliRunner().invoke(app, argv, env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})
    assert "╭" in wide.output and "…" not in wide.output  # wide enough: rich's panels


def test_a_missing_optional_extra_is_named_with_its_install_command(tiny_run, tmp_path, monkeypatch):
    """`pip install imgclf` without the export extra, then `imgclf export RUN`: "internal error: ModuleNotFoundError
    ... please report it". The command names the extra to install instead."""
    import sys

    from typer.testing import CliRunner

    from imgclf.cli import app

    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed: importing it raises ModuleNotFoundError
    result = CliRunner().invoke(app, ["export", str(tiny_run), "--out", str(tmp_path / "exported")])
    assert result.exit_code == 2, result.output
    assert "this command needs the onnx package, part of imgclf's export extra, which is not installed: pip " \
           "install 'imgclf[export]'" in " ".join(result.output.split())
    assert "internal error" not in result.output


def _built_commands(group, prefix=()):
    """Every command as the CLI builds it to run (train's options generated, every path checked), by its argv."""
    import click

    for name in list(group.commands):
        _, cmd, _ = group.resolve_command(click.Context(group), [name])
        if hasattr(cmd, "commands"):
            yield from _built_commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_every_path_a_command_takes_refuses_blank_text():
    """Typer made Path('') of '', which is '.': `imgclf audit DATA --out ''` (a shell variable left empty)
    wrote into the current folder. Each command's each path parameter is checked, drawn from the CLI itself."""
    import typer

    from imgclf.errors import ImgclfError

    seen = set()
    for argv, cmd in _built_commands(typer.main.get_command(app)):
        for param in cmd.params:
            if "Path" not in str(getattr(getattr(param, "type_descriptor", None), "annotation", "")) \
                    and type(getattr(param, "type", None)).__name__ != "Path":
                continue
            seen.add((" ".join(argv), param.name))
            for blank in ("", "  "):
                with pytest.raises(ImgclfError, match=rf"^{param.name} must be a path \('\.' for the current "
                                                      rf"folder\)\. Received: {param.name}='{blank}'$"):
                    param.process_value(None, [blank] if param.nargs != 1 else blank)
    assert {("audit", "out"), ("inspect", "plots"), ("inspect", "data"), ("export", "out"), ("compare", "runs"),
            ("study imbalance", "out"), ("train", "config"), ("demo", "out"),
            ("evaluate", "run"), ("tune", "space")} <= seen, sorted(seen)


def test_a_blank_out_writes_nothing_into_the_current_folder(tmp_path, monkeypatch):
    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=3, size=8)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for argv in (["audit", str(data), "--out", ""], ["inspect", str(data), "--plots", ""]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2 and "must be a path ('.' for the current folder)" in result.output, \
            (argv, result.output)
    assert list(work.iterdir()) == []


def test_ctrl_c_in_a_command_without_its_own_message_says_so_in_one_line(image_folder, monkeypatch):
    """`imgclf audit` stopped by Ctrl-C exited 130 without a word."""
    import imgclf.audit as audit_package

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(audit_package, "audit", interrupted)
    result = CliRunner().invoke(app, ["audit", str(image_folder)])
    assert result.exit_code == 130
    assert result.output.strip() == "error: imgclf audit interrupted (Ctrl-C)", result.output
