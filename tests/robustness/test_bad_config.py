"""Each bad configuration exits with status 2 and one clear message, never a traceback."""

import re

import pytest
from typer.testing import CliRunner

from imgclf.cli import app


class _Proc:
    def __init__(self, result):
        self.returncode = result.exit_code
        self.stderr = result.stderr + (repr(result.exception) if result.exit_code not in (0, 2) else "")
        self.stdout = result.stdout


def _cli(args):
    return _Proc(CliRunner().invoke(app, args))


@pytest.mark.parametrize("args, message", [
    (["--model", "model_ss"], r"model must be one of .*Did you mean: model_s\? Received: model='model_ss'"),
    (["--augment", "rotat=3"], r"augment item must be one of .*Did you mean: rotate"),
    (["--augment", "zoom=5"], r"augment zoom must be between 0 and 0.95. Received: augment zoom=5"),
    (["--lr", "-1"], r"lr must be a number > 0 and <= 10 \(e.g. 3e-3\), or auto .* Received: lr=-1.0"),
    (["--val-split", "0.95"], r"val_split \+ test_split must be < 0.9"),
    (["--img-size", "4", "--model", "model_s"],
     r"img_size \(--img-size\) for model model_s must be at least 8. Received: img_size=4"),
    (["--optimizer", "adamm"], r"optimizer must be one of \{adam, adamw, sgd\}. Did you mean: adam, adamw\? "
                                r"Received: optimizer='adamm'"),
    (["--color", "cmyk"], r"color must be one of \{auto, grayscale, rgb\}. Received: color='cmyk'"),
    (["--model-args", "depth=3"], r"model_args key for simple_cnn must be one of \{dropout, width\}"),
    (["--monitor", "val_f1"], r"monitor must be one of \{val_acc, val_loss, val_map\}. Did you mean: val_map, val_acc\? "
                              r"Received: monitor='val_f1'"),
    (["--cache-budget", "lots"], r"cache_budget \(--cache-budget\) must be a size such as 512MB"),
    (["--time-limit", "soon"], r"time_limit \(--time-limit\) must be a duration such as 90s"),
    (["--early-stopping", "soon"], r"^error: --early-stopping must be an integer, or none \(unset\)\. "
                                   r"Received: --early-stopping='soon'$"),
])
def test_bad_option(image_folder, tmp_path, args, message):
    proc = _cli(["train", str(image_folder), "--out", str(tmp_path / "r"), *args])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(message, " ".join(proc.stderr.split())), proc.stderr


def test_the_command_line_names_the_flag_of_a_setting_and_the_api_does_not(image_folder, tmp_path):
    """Errors name the setting (the API's keyword, the config file's key); on the command line each line of one
    also names the flag, for a setting pydantic refused (several at once) as for one a validator refused."""
    import imgclf
    from imgclf.errors import ImgclfError

    proc = _cli(["train", str(image_folder), "--out", str(tmp_path / "r"), "--batch-size", "0",
                 "--label-smoothing", "3", "--model", "fast_resnet", "--model-args", "stem=x"])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and lines[0].startswith("error: batch_size (--batch-size) must be"), proc.stderr
    assert lines[1].startswith("label_smoothing (--label-smoothing) must be"), proc.stderr
    proc = _cli(["train", str(image_folder), "--out", str(tmp_path / "r"), "--model", "fast_resnet",
                 "--model-args", "stem=x", "--epochs", "1"])
    assert "model_args.stem (--model-args) for fast_resnet must be one of {pool, stride}" in proc.stderr
    with pytest.raises(ImgclfError, match=r"^batch_size must be"):
        imgclf.fit(data=str(image_folder), batch_size=0)


def test_missing_data_and_existing_run(tiny_run, tmp_path):
    proc = _cli(["train", str(tmp_path / "nowhere")])
    assert proc.returncode == 2 and "data must be an existing folder" in proc.stderr
    proc = _cli(["train", str(tmp_path), "--out", str(tiny_run)])
    assert proc.returncode == 2 and "holds another run" in proc.stderr and "Traceback" not in proc.stderr


def test_evaluate_and_predict_on_a_non_run(tmp_path):
    for cmd in (["evaluate", str(tmp_path)], ["predict", str(tmp_path), str(tmp_path)]):
        proc = _cli(cmd)
        assert proc.returncode == 2 and "model.json" in proc.stderr and "Traceback" not in proc.stderr


def test_a_misspelt_setting_in_a_config_file_gets_a_suggestion(image_folder, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("lrr: 0.01\noptimizer: adamm\n")
    proc = _cli(["train", str(image_folder), "--out", str(tmp_path / "r"), "--config", str(config)])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    text = " ".join(proc.stderr.split())
    assert re.search(rf"setting in {re.escape(str(config))} must be one of \{{accelerator, .*\}}. Did you mean: lr\? "
                     r"Received: setting='lrr', lrr=0.01", text), proc.stderr
    assert f"optimizer in {config} must be one of {{adam, adamw, sgd}}. Did you mean: adam, adamw?" in text


def test_a_bad_setting_says_which_layer_it_came_from(image_folder, tmp_path):
    """A bad value written in a --config file is named with the file (the user is not left to search their
    command line for it), and gets no flag the user never typed; one typed on the command line over the file's
    is named with its flag."""
    config = tmp_path / "settings.yaml"
    config.write_text("batch_size: 0\nepochs: 2\nlabel_smoothing: 3\n")
    proc = _cli(["train", str(image_folder), "--out", str(tmp_path / "r"), "--config", str(config),
                 "--label-smoothing", "2"])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 2, proc.stderr
    assert lines[0] == f"error: batch_size in {config} must be from 1 to 65,536. Received: batch_size=0"
    assert lines[1].startswith("label_smoothing (--label-smoothing) must be"), proc.stderr
    # a check across settings names the one it refuses, and where it was written
    config.write_text("features_only: true\naugment: hflip\n")
    proc = _cli(["train", str(image_folder), "--out", str(tmp_path / "r"), "--config", str(config),
                 "--model", "test_efficientnet", "--no-pretrained"])
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: augment in {config} must be"), proc.stderr


def test_a_broken_config_file_says_where(tmp_path):
    """YAML's own first line ("while parsing a flow sequence") names no line; the error does."""
    from imgclf.config_text import load_config_file
    from imgclf.errors import ImgclfError

    config = tmp_path / "c.yaml"
    config.write_text("epochs: 3\nmodel_args: [width: 4\nlr: 0.1\n")
    with pytest.raises(ImgclfError, match=r"config_file must be a readable YAML file.*at line 3, column 3\)"):
        load_config_file(config)
    # a key given twice: safe_load kept the last, and a pasted lr: 0.5 under lr: 0.01 trained at 0.5 unsaid
    config.write_text("epochs: 3\nlr: 0.01\nmodel_args:\n  width: 4\nlr: 0.5\n")
    with pytest.raises(ImgclfError, match=r"config_file must be a readable YAML file.*found the key 'lr' twice at "
                                          r"line 5, column 1\)"):
        load_config_file(config)
    config.write_text("model_args:\n  width: 4\n  width: 8\n")  # within a nested mapping too
    with pytest.raises(ImgclfError, match=r"found the key 'width' twice at line 3"):
        load_config_file(config)
    config.write_text("base: &b {epochs: 3}\nrun:\n  <<: *b\n  epochs: 4\n")  # a merge key overridden is YAML's own
    assert load_config_file(config)["run"] == {"epochs": 4}


def test_every_bad_setting_is_one_line_in_the_helpers_shape():
    from imgclf.config import ConfigError, TrainConfig, make_config

    with pytest.raises(ConfigError) as caught:
        make_config(data="x", lr=0, optimizer="sgdd", l2={"cnv": 1e-4}, schedule="budget", bogus=1)
    assert caught.value.lines == [
        "optimizer must be one of {adam, adamw, sgd}. Did you mean: sgd? Received: optimizer='sgdd'",
        "lr must be a number > 0 and <= 10 (e.g. 3e-3), or auto (the LR finder picks it). Received: lr=0",
        "l2 key must be one of {conv, dense}. Did you mean: conv? Received: l2 key='cnv'",
        "setting must be one of {" + ", ".join(sorted(TrainConfig.model_fields)) + "}. Received: setting='bogus', bogus=1",
    ]
    with pytest.raises(ConfigError, match=r"^time_limit must be set when schedule=budget: .* "
                                          r"Received: time_limit=None, schedule='budget'. Give --time-limit 10m, or "
                                          r"train without a budget under another schedule: --schedule onecycle "
                                          r"--epochs N.$"):
        make_config(data="x", schedule="budget")
    with pytest.raises(ConfigError, match=r"^data must be given. Received: no data setting$"):
        make_config()
    with pytest.raises(ConfigError, match=r"^model_args must be key=value pairs such as width=64. "
                                          r"Received: model_args='w' \(item 'w' is not key=value\)$"):
        make_config(data="x", model_args="w")


def test_mapping_settings_take_the_forms_the_help_shows():
    """--l2's help shows {conv: 1e-5, dense: 1e-4}, a YAML flow mapping as a config file writes it: it was refused
    as bad JSON, and a bad --l2 was told to look like width=64 (a model_args example)."""
    from imgclf.config import ConfigError, make_config

    for text in ("{conv: 1e-5, dense: 1e-4}", '{"conv": 1e-5, "dense": 1e-4}', "conv=1e-5,dense=1e-4"):
        assert make_config(data="x", l2=text).l2 == {"conv": 1e-5, "dense": 1e-4}, text
    assert make_config(data="x", model_args="{width: 8, stem: stride}").model_args == {"width": 8, "stem": "stride"}
    # only the exponents PyYAML reads as text become numbers; quoted text stays text
    assert make_config(data="x", model_args='{stem: "1", name: e5}').model_args == {"stem": "1", "name": "e5"}
    with pytest.raises(ConfigError, match=r"^l2 must be key=value pairs such as conv=1e-5,dense=1e-4. "):
        make_config(data="x", l2="garbage")
    with pytest.raises(ConfigError, match=r"^l2 must be a mapping such as \{conv: 1e-5, dense: 1e-4\} or "):
        make_config(data="x", l2="{conv: [1, }")


def test_data_of_the_wrong_type_is_one_line():
    """fit(data=5) gave two lines, one per type pydantic tried (data.str ..., data.list[str] ...)."""
    import imgclf
    from imgclf.errors import ImgclfError

    for value in (5, {"train": "x"}):
        with pytest.raises(ImgclfError) as info:
            imgclf.fit(data=value)
        assert str(info.value) == ("data must be one image folder (a path) or a non-empty list of folders. "
                                   f"Received: data={value!r}")


def test_a_misspelt_keyword_is_offered_the_functions_own_keywords_too(image_folder):
    """lr_find(stepz=20) was offered lr_step but not steps, its own keyword; fit(overwrit=True) not overwrite."""
    import imgclf
    from imgclf.errors import ImgclfError

    for call, wrong, right in ((imgclf.lr_find, "stepz", "steps"), (imgclf.fit, "overwrit", "overwrite"),
                               (imgclf.fit, "reprot", "report")):
        with pytest.raises(ImgclfError, match=rf"^setting must be one of .*Did you mean: ([a-z_]+, )*{right}\b"):
            call(data=str(image_folder), **{wrong: 1})


def test_a_number_setting_refuses_true_and_false(image_folder, tmp_path):
    """YAML's `batch_size: true` was read as 1 (pydantic takes a bool for an int): a run at batch size 1 that scored
    chance without a word; `early_stopping: true` a patience of 1 epoch."""
    import imgclf
    from imgclf.errors import ImgclfError

    config = tmp_path / "c.yaml"
    for text, said in (("batch_size: true\nepochs: 1\n", "batch_size in {} must be a number, not true or false. "
                                                            "Received: batch_size=True"),
                       ("early_stopping: true\n", "early_stopping in {} must be a number or none, not true or false")):
        config.write_text(text)
        proc = _cli(["train", str(image_folder), "--out", str(tmp_path / "r"), "--config", str(config)])
        assert proc.returncode == 2 and not (tmp_path / "r").exists(), proc.stderr
        assert proc.stderr.startswith("error: " + said.format(config)), proc.stderr
    with pytest.raises(ImgclfError, match=r"epochs must be a number, not true or false. Received: epochs=True"):
        imgclf.fit(data=str(image_folder), epochs=True, out=str(tmp_path / "r"))
    # an unquoted `off`, a none word, reaches us as false from YAML: the setting is unset, as `none` would
    from imgclf.config import TrainConfig

    assert TrainConfig(data="x", early_stopping=False, ema=False).early_stopping is None
    with pytest.raises(Exception, match=r"l2"):  # a mapping's own refusal, not "must be a number"
        TrainConfig(data="x", l2=True)
