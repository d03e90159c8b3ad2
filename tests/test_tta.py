"""Test-time augmentation uses only the views of an image that the run's training augmentation made."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch

from imgclf.data.augment import _FILLS
from imgclf.errors import ImgclfError
from imgclf.inference import Classifier
from imgclf.records import ModelCard, RunDir, TrainingSummary
from imgclf.tta import TTAViews, shifted


class Recorder(torch.nn.Module):
    """A 'model' that keeps every batch it is fed, so a test sees the exact views TTA made."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        left, right = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
        return torch.stack([left.mean((1, 2, 3)), right.mean((1, 2, 3))], 1)  # changes under a mirror


def _classifier(augment: str, size: int = 16) -> tuple[Classifier, Recorder]:
    card = ModelCard(architecture="recorder", classes=["left", "right"], img_size=size, in_chans=1,
                     color="grayscale", mean=[0.0], std=[1.0], num_params=0,
                     training=TrainingSummary(augment=augment))
    model = Recorder()
    return Classifier(model, card), model


def _asymmetric(size: int = 16) -> np.ndarray:
    """uint8 (2, size, size, 1): a ramp brighter to the right, and its mirror; no view equals another by chance."""
    ramp = np.tile(np.arange(size, dtype=np.uint8) * (255 // size), (size, 1))
    ramp = ramp + np.arange(size, dtype=np.uint8)[:, None]  # and downwards, so vertical mirrors differ too
    return np.stack([ramp, ramp[:, ::-1]])[..., None]


def _unit(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255


def _contains(views: list[torch.Tensor], x: torch.Tensor) -> bool:
    return any(v.shape == x.shape and torch.allclose(v, x, atol=1e-6) for v in views)


@pytest.mark.parametrize("augment", ["shift=0.1,rotate=10", "rotate=30,shift=0.1,shear=0.1,zoom=0.1", "crop=2"])
def test_a_run_trained_without_flip_never_sees_a_flipped_view(augment):
    clf, model = _classifier(augment)
    pixels = _asymmetric()
    probs = clf.predict_pixels(pixels, tta=True)
    x = _unit(pixels)
    assert _contains(model.seen, x), "the image itself is always a view"
    assert not _contains(model.seen, x.flip(-1)) and not _contains(model.seen, x.flip(-2)), \
        f"training with augment={augment!r} never flipped, so TTA must not either"
    assert len(model.seen) == 3, "the image and two shifts (training translated by at least a pixel)"
    assert probs[0, 1] > probs[0, 0], "averaging no mirror keeps the ramp's side"


def test_a_run_trained_with_flip_uses_the_flip_view():
    clf, model = _classifier("hflip,rotate=20,brightness=0.2")  # S2's augmentation: no translation
    pixels = _asymmetric()
    clf.predict_pixels(pixels, tta=True)
    x = _unit(pixels)
    assert len(model.seen) == 2 and _contains(model.seen, x) and _contains(model.seen, x.flip(-1))
    clf, model = _classifier("hflip,vflip,crop=1")
    clf.predict_pixels(pixels, tta=True)
    assert len(model.seen) == 5 and _contains(model.seen, x.flip(-1)) and _contains(model.seen, x.flip(-2))


def test_views_are_named_as_used():
    from imgclf.demo import DEMO_SETTINGS

    demo = TTAViews.for_training(DEMO_SETTINGS["augment"], DEMO_SETTINGS["img_size"])  # digits: never flipped
    assert not demo.hflip and not demo.vflip and demo.shift == 1
    assert TTAViews.for_training("hflip,rotate=20", 128).describe() == "identity, horizontal flip"
    assert TTAViews.for_training("shift=0.1,rotate=10", 16).describe() == \
        "identity, shifts by 1 px right-down and left-up (edge pixels repeated, as in training)"
    # capped by what training reached: S4's 3-pixel translation at 227 px, not a sixteenth (14 px)
    assert TTAViews.for_training("rotate=20,hflip,crop=3", 227).shift == 3
    assert TTAViews.for_training("shift=0.2", 224).shift == 14  # a sixteenth of the side, within the 44 px reach
    assert TTAViews.for_training("hflip,crop=2,fill=constant", 28).describe() == \
        "identity, horizontal flip, shifts by 1 px right-down and left-up (zero fill, as in training)"
    assert TTAViews.for_training("shift=0.05", 16).shift == 0  # 0.8 px of reach: a whole-pixel shift was never seen


@pytest.mark.parametrize("fill", ["nearest", "constant", "reflect"])
def test_shift_views_equal_the_translation_training_made(fill):
    """The shifted view is the training augmentation's own grid_sample translation by whole pixels, fill included."""
    x = torch.rand(2, 3, 12, 12)
    for s in (2, -2):
        theta = torch.tensor([[1.0, 0.0, -2 * s / 12], [0.0, 1.0, -2 * s / 12]]).expand(2, 2, 3)
        grid = torch.nn.functional.affine_grid(theta, [2, 3, 12, 12], align_corners=False)
        trained = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode=_FILLS[fill],
                                                  align_corners=False)
        assert torch.allclose(shifted(x, s, s, fill), trained, atol=1e-5)


@pytest.mark.parametrize("augment", ["", "rotate=10,zoom=0.1,contrast=0.1"])
def test_tta_is_refused_for_a_run_whose_training_made_no_view(augment, tmp_path):
    clf, model = _classifier(augment)
    message = r"tta must be False for a run whose training used no hflip, vflip, shift or crop.*Received: tta=True"
    with pytest.raises(ImgclfError, match=message):
        clf.predict_pixels(_asymmetric(), tta=True)
    with pytest.raises(ImgclfError, match=message):
        clf.predict([tmp_path / "never-decoded.png"], tta=True)  # refused before any file is read
    assert model.seen == []
    assert clf.predict_pixels(_asymmetric()).shape == (2, 2), "without TTA it predicts as always"


@pytest.fixture(scope="module")
def no_flip_run(tiny_run, tmp_path_factory):
    """tiny_run's weights and files, its card saying it trained with rotation only (no flip, no translation)."""
    run = RunDir(shutil.copytree(tiny_run, tmp_path_factory.mktemp("tta") / "rotate-only"))
    card = run.read_card()
    card.training.augment = "rotate=10"
    run.write_card(card)
    return run.path


def test_evaluation_records_the_views_it_used(tiny_run, no_flip_run):
    from imgclf.evaluation.run_eval import evaluate_run

    trained = RunDir(tiny_run).read_card().training.augment
    assert trained == "hflip,crop=1"
    metrics = RunDir(tiny_run).read_metrics()  # written by training's own evaluation
    assert metrics.tta is not None
    assert metrics.tta.transforms == "identity, horizontal flip, shifts by 1 px right-down and left-up " \
                                     "(edge pixels repeated, as in training)"
    with pytest.raises(ImgclfError, match=r"tta must be False .*Received: tta=True \(run trained with "
                                          r"augment='rotate=10'\)"):
        evaluate_run(no_flip_run, tta=True, progress=False)
    metrics = evaluate_run(no_flip_run, tta="auto", progress=False)  # what training's own evaluation asks
    assert metrics.tta is None and metrics.count > 0


def _tta_help(command: str) -> str:
    import typer

    from imgclf.cli import app

    group = typer.main.get_command(app)
    cmd = group.resolve_command(typer.Context(group), [command])[1]  # the CLI builds a command when it runs
    return next(p.help for p in cmd.params if p.name == "tta")


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_tta_help_names_mirrors_only_as_views_training_made(command):
    text = " ".join(_tta_help(command).split())
    assert "only where the run's training made them, its mirror images (augment hflip, vflip)" in text
    # no other mention of a flip or mirror: the view is not unconditional
    assert set(re.findall(r"\w*(?:flip|mirror)\w*", text)) == {"mirror", "hflip", "vflip"}
    assert text.count("mirror") == 1 and "efused for a run trained with none of these" in text


def test_cli_refuses_tta_for_a_run_trained_without_views(no_flip_run, image_folder):
    from typer.testing import CliRunner

    from imgclf.cli import app

    for args in (["evaluate", str(no_flip_run), "--tta"], ["predict", str(no_flip_run), str(image_folder / "cat"),
                                                            "--tta"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "tta must be False for a run whose training used no hflip" in " ".join(result.output.split())


def _tta_section(html: str) -> str:
    start = html.index("<h3>Test-time augmentation</h3>")
    return html[start:html.index("</section>", start)]


def test_report_says_which_views_and_no_flip_where_training_never_flipped(tiny_run, no_flip_run):
    from imgclf.evaluation.report import write_report
    from imgclf.evaluation.run_eval import evaluate_run

    section = _tta_section((tiny_run / "report.html").read_text())
    assert "horizontal flip, shifts by 1 px right-down and left-up" in section
    evaluate_run(no_flip_run, tta="auto", progress=False)
    write_report(no_flip_run)
    section = _tta_section((no_flip_run / "report.html").read_text())
    assert "flip" not in section.lower() and "mirror image" in section
    assert "Not used for this run: training used augment rotate=10" in section


def test_report_does_not_guess_views_an_older_evaluation_did_not_record(tmp_path):
    from run_fixtures import write_run

    from imgclf.evaluation.report import write_report

    run = RunDir(write_run(tmp_path))
    metrics = run.read_metrics()
    metrics.tta.transforms = ""
    run.write_metrics(metrics)
    write_report(run.path)
    section = _tta_section((run.path / "report.html").read_text())
    assert "flip" not in section and "views not recorded" in section
