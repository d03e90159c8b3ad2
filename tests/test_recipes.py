"""Every recipe loads, validates and trains one step on tiny data."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import imgclf
import imgclf.recipes
from conftest import make_image_folder
from imgclf.cli import app
from imgclf.errors import ImgclfError
from imgclf.models import get_model_info
from imgclf.recipes import list_recipes, load_recipe, recipe_document

RECIPES = [name for name, _ in list_recipes()]
# keep each one-step run tiny: the architecture is what is checked, not its native resolution
SMALL_SIZE = {"caltech_cnn": 64, "vgg16": 32, "mobilenetv2_100": 32}


def test_the_reference_systems_are_all_there():
    expected = {"s1-vgg16-flatten256", "s1-vgg16-dense512-256", "s2-mobilenetv2-finetune", "s5-vgg16-features",
                "s2-custom-cnn", "s3-fer-cnn", "s3-fer-cnn-small", "s4-caltech-cnn", "s4-caltech-cnn-reg",
                "s4-caltech-cnn-reg-bn", "s5-model-s", "fast-fmnist"}
    assert expected <= set(RECIPES)
    for name in RECIPES:
        doc = recipe_document(name)
        assert doc["description"] and doc["reference"] and doc["reproduces"], name


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_trains_one_step(name, tmp_path_factory):
    data = make_image_folder(tmp_path_factory.mktemp("d"), classes=("a", "b"), per_class=6, size=24)
    config = load_recipe(name)
    overrides = {"data": str(data), "out": str(tmp_path_factory.mktemp("r") / name), "epochs": 1,
                 "batch_size": 64, "progress": False, "val_split": 0.2, "test_split": 0.2, "time_limit": None,
                 "schedule": "none" if config.get("schedule") == "budget" else config.get("schedule", "none")}
    if config.get("sizing") == "probe":
        overrides["sizing"] = "fixed"  # the probe sizes for a time limit; tests/test_sizing.py trains it
    if config["model"] in SMALL_SIZE:
        overrides["img_size"] = SMALL_SIZE[config["model"]]
    if get_model_info(config["model"]).pretrained:
        overrides["pretrained"] = False  # offline: the architecture and schedule are what is checked here
    run = imgclf.fit({**config, **overrides}, report=False)
    assert run.epochs_run == 1 and (run.path / "model.safetensors").exists()
    saved = yaml.safe_load((run.path / "config.yaml").read_text())
    kept = {key: value for key, value in config.items() if key not in overrides}
    assert {key: saved[key] for key in kept} == kept  # the run trained with the recipe's own settings


def test_train_cli_takes_a_recipe_and_lets_flags_override_it(tmp_path):
    data = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=6, size=24)
    result = CliRunner().invoke(app, ["train", str(data), "--recipe", "s5-model-s", "--epochs", "1", "--lr", "0.01",
                                      "--batch-size", "4", "--val-split", "0.2", "--test-split", "0.2",
                                      "--no-progress", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    recipe = load_recipe("s5-model-s")
    assert saved["recipe"] == "s5-model-s" and saved["model"] == recipe["model"] == "model_s"
    # settings where the recipe differs from the CLI's defaults, so a default overwriting it would show
    for key in ("augment", "schedule", "early_stopping", "normalize", "img_size"):
        assert saved[key] == recipe[key], key
    assert (saved["epochs"], saved["lr"], saved["batch_size"]) == (1, 0.01, 4)  # the flags win


def test_recipes_cli_lists_them():
    result = CliRunner().invoke(app, ["recipes"])
    assert result.exit_code == 0 and all(name in result.stdout for name in RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_cli_prints_the_file_byte_for_byte_with_or_without_show(name):
    shipped = (Path(imgclf.recipes.__file__).parent / f"{name}.yaml").read_bytes()
    for words in (["recipes", name], ["recipes", "show", name]):
        result = CliRunner().invoke(app, words)
        assert result.exit_code == 0, result.output
        assert result.stdout_bytes == shipped, words


def test_recipes_cli_keeps_the_comments_a_yaml_round_trip_drops():
    result = CliRunner().invoke(app, ["recipes", "show", "s2-mobilenetv2-finetune"])
    assert "  # Keras' fine-tuning guide calls the base with training=False" in result.stdout


@pytest.mark.parametrize("words, message", [
    (["recipes", "s5-model"], "recipe must be one of {fast, fast-fmnist, "),
    (["recipes", "show", "s4-caltech"], "Did you mean: s4-caltech-cnn, s4-caltech-cnn-reg, s4-caltech-cnn-reg-bn? "
                                        "Received: recipe='s4-caltech'"),
    (["recipes", "show"], "NAME must be a recipe name. Received: nothing after 'show'"),
    (["recipes", "s5-model-s", "s3-fer-cnn"], "Received: recipes arguments='s5-model-s s3-fer-cnn'"),
])
def test_recipes_cli_refuses_unknown_names_with_a_suggestion(words, message):
    result = CliRunner().invoke(app, words)
    assert result.exit_code == 2 and message in result.stderr and result.stdout == "", result.output
    if words[-1] == "s5-model":
        assert "Did you mean: s5-model-s? Received: recipe='s5-model'" in result.stderr


# Whose final model is the best epoch's: the references that restore it (Keras' restore_best_weights,
# ModelCheckpoint's best model) and those that keep the last epoch (no callback, or EarlyStopping's default).
KEEPS_BEST_EPOCH = {"s1-vgg16-flatten256": False, "s1-vgg16-dense512-256": False, "s2-custom-cnn": False,
                    "s2-mobilenetv2-finetune": True, "s3-fer-cnn": True, "s3-fer-cnn-small": False,
                    "s4-caltech-cnn": False, "s4-caltech-cnn-reg": False, "s4-caltech-cnn-reg-bn": False,
                    "s5-model-s": True, "s5-vgg16-features": True}


@pytest.mark.parametrize("name", sorted(KEEPS_BEST_EPOCH))
def test_a_reference_recipe_keeps_the_epoch_its_reference_keeps(name):
    from imgclf.config import make_config

    assert make_config(data="x", **load_recipe(name)).restore_best is KEEPS_BEST_EPOCH[name]


def test_s3_first_model_trains_as_s3_says_before_its_final_model_changed_it():
    """S3: the final model "lowered the learning rate to 0.0001 and added early stopping, not used before"; the
    first model's recipe had taken the final model's settings."""
    from imgclf.config import make_config

    first, final = (make_config(data="x", **load_recipe(name)) for name in ("s3-fer-cnn-small", "s3-fer-cnn"))
    assert final.lr == 1e-4 and final.early_stopping == 3
    assert first.lr > final.lr and first.early_stopping is None and first.epochs == final.epochs == 20


# The transfer references whose backbone never trains: a longer run must not unfreeze it (with freeze_epochs equal
# to the recipe's epochs, --epochs 30 fine-tuned all of VGG16 from epoch 16 at the head's learning rate)
FROZEN_BASE = ("s1-vgg16-flatten256", "s1-vgg16-dense512-256")


@pytest.mark.parametrize("name", FROZEN_BASE)
def test_a_frozen_base_recipe_keeps_its_base_frozen_at_any_epoch_count(name):
    from imgclf.config import make_config

    for epochs in (1, 1000, 10_000):
        cfg = make_config(data="x", **{**load_recipe(name), "epochs": epochs})
        assert cfg.freeze_epochs >= cfg.epochs and not cfg.features_only


# Keras references whose recipe departs from Keras in ways that move scores (BatchNorm momentum and the
# recomputed statistics, PyTorch's layer defaults, bf16): README says each recipe's text names its departures
KERAS_DEPARTURES = {"s3-fer-cnn": "momentum is 0.1", "s3-fer-cnn-small": "momentum is 0.1",
                    "s5-model-s": "momentum is 0.1", "s1-vgg16-flatten256": "PyTorch's defaults",
                    "s1-vgg16-dense512-256": "PyTorch's defaults", "s2-mobilenetv2-finetune": "PyTorch's defaults",
                    "s5-vgg16-features": "PyTorch's defaults"}


@pytest.mark.parametrize("name", sorted(KERAS_DEPARTURES))
def test_a_keras_reference_recipe_names_where_it_departs_from_keras(name):
    text = " ".join(recipe_document(name)["reference"].split())
    assert "Unlike Keras" in text and KERAS_DEPARTURES[name] in text and "--precision 32" in text


def _quoted_commands(text: str) -> list[list[str]]:
    import re
    import shlex

    return [shlex.split(c) for c in re.findall(r"`(imgclf [^`]+)`", " ".join(text.split()))]


QUOTING = [name for name in RECIPES if _quoted_commands(recipe_document(name)["reference"])]


def test_some_recipes_quote_a_command():  # else the test below would check nothing and pass
    assert len(QUOTING) >= 3, QUOTING


@pytest.mark.parametrize("name", QUOTING)
def test_every_command_a_recipe_quotes_parses(name, tmp_path):
    """A command a recipe's text tells the user to run is one the CLI takes: its options exist and the required
    ones are there (parsed, not run)."""
    import typer

    root = typer.main.get_command(app)
    for words in _quoted_commands(recipe_document(name)["reference"]):
        args = [str(tmp_path) if w in ("DATA", "DIR") else w for w in words[1:]]
        command = root
        while hasattr(command, "resolve_command"):  # a group builds the command it resolves (options deferred)
            _, command, args = command.resolve_command(command.make_context("imgclf", list(args)), args)
        command.make_context(" ".join(words[:3]), args)  # raises click's UsageError on a bad command


def test_a_recipe_given_with_a_runs_config_is_refused_not_recorded(tiny_run):
    """A run's config.yaml replaces every recipe setting: trained exactly as before, the run recorded the recipe
    given, and compare took the two for different experiments."""
    from imgclf.pipeline import resolve_config

    stored = tiny_run / "config.yaml"
    with pytest.raises(ImgclfError, match=r"^recipe must be none with a run's config.yaml, whose settings replace "
                                          r"every setting of a recipe.*Received: recipe='s5-model-s'"):
        resolve_config(recipe="s5-model-s", config_file=stored)
    assert resolve_config(config_file=stored).recipe is None  # the file alone is the run's settings


@pytest.mark.parametrize("name", RECIPES)
def test_a_recipe_as_shipped_has_no_changes_and_any_setting_given_is_one(name):
    """Only the settings a recipe's file spelt out were compared: --label-smoothing, --no-pretrained or a time
    limit on a recipe that sets none left the run called the recipe as shipped."""
    from imgclf.pipeline import resolve_config
    from imgclf.pipeline.recipe_changes import changes_from_recipe

    shipped = resolve_config(recipe=name, data="d", seed=3, progress=False, out="o")  # none of them training's
    assert changes_from_recipe(shipped) == {}
    smoothing = 0.3 if shipped.label_smoothing != 0.3 else 0.2
    changed = resolve_config(recipe=name, data="d", label_smoothing=smoothing, time_limit="67m")
    assert set(changes_from_recipe(changed)) == {"label_smoothing", "time_limit"}, changes_from_recipe(changed)
