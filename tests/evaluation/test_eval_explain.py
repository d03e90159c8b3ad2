"""Grad-CAM through the grad-cam library: target layer choice for reference CNNs and timm backbones, maps, figure."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from imgclf.errors import ImgclfError
from imgclf.evaluation.explain import explain_run, find_target_layer, gradcam_heatmaps
from imgclf.models import create_model

pytest.importorskip("pytorch_grad_cam")


def test_target_layer_is_the_last_conv_of_forward_features_for_reference_cnns():
    model = create_model("simple_cnn", 3, 3, 16, width=8).eval()
    name, layer = find_target_layer(model, torch.zeros(1, 3, 16, 16))
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert name == convs[-1] and name.startswith("features.")
    model = create_model("model_s", 10, 3, 32).eval()
    assert find_target_layer(model, torch.zeros(1, 3, 32, 32))[0] == [n for n, m in model.named_modules()
                                                                     if isinstance(m, nn.Conv2d)][-1]


def test_target_layer_for_a_timm_backbone():
    timm = pytest.importorskip("timm")
    resnet = timm.create_model("resnet18", pretrained=False, num_classes=3).eval()
    # the block around the last convolution: its output holds what the skip connection carries too
    assert find_target_layer(resnet, torch.zeros(1, 3, 64, 64))[0] == "layer4.1"


def test_a_vision_transformer_is_read_at_its_last_block_not_its_patch_embedding():
    """A ViT's one convolution embeds the input's patches: the search for the last convolution read the maps
    there, the input's own contrast rather than what the decision used. It is read at the last block's first norm,
    the patch tokens laid out on their grid (pytorch-grad-cam's recipe), inside a classifier as imgclf builds
    one too (the backbone under `backbone.`)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    vit = timm.models.vision_transformer.VisionTransformer(img_size=16, patch_size=4, embed_dim=16, depth=2,
                                                          num_heads=2, num_classes=3).eval()
    assert find_target_layer(vit, torch.zeros(1, 3, 16, 16))[0] == "blocks.1.norm1"
    wrapped = nn.Module()
    wrapped.backbone = vit
    wrapped.forward = vit.forward
    assert find_target_layer(wrapped, torch.zeros(1, 3, 16, 16))[0] == "backbone.blocks.1.norm1"
    pixels = np.random.default_rng(0).integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    maps, name = gradcam_heatmaps(vit, pixels, [0.5] * 3, [0.25] * 3)
    assert name == "blocks.1.norm1" and maps.shape == (2, 16, 16) and np.isfinite(maps).all()
    # a map over the 4 x 4 patch grid, upsampled: it varies between patches (the patch embedding's did too, but
    # a map that failed to reshape the tokens would be refused by pytorch-grad-cam or be flat)
    assert all(m.max() - m.min() > 0.5 for m in maps)


def test_target_layer_of_a_residual_network_is_its_last_block_and_sees_what_the_skip_carries():
    """fast_resnet's target was the last convolution inside its last residual branch (x + body(x)): evidence
    passed along the skip never showed, and right, confident predictions read "no positive evidence". Here the
    last block's branch is silenced, so that all evidence travels the skip: the map must still find it."""
    from imgclf.models.base import FeaturesHeadNet
    from imgclf.models.resnet import _Residual

    model = create_model("fast_resnet", 3, 3, 16, width=4).eval()
    assert find_target_layer(model, torch.zeros(1, 3, 16, 16))[0] == "features.8"  # the last _Residual
    conv = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.ones_(conv.weight)
    block = _Residual(1)
    for p in block.body.parameters():
        nn.init.zeros_(p)
    net = FeaturesHeadNet(nn.Sequential(conv, block), nn.Sequential(nn.Flatten(), nn.Linear(256, 2))).eval()
    with torch.no_grad():
        weights = torch.zeros(2, 16, 16)
        weights[1, :8, :8] = 1.0  # class 1: the top-left quadrant
        weights[0, 8:, 8:] = 1.0
        net.head[1].weight.copy_(weights.view(2, -1))
        net.head[1].bias.zero_()
    pixels = np.full((2, 16, 16, 1), 40, dtype=np.uint8)
    pixels[:, :8, :8] = 250
    maps, name = gradcam_heatmaps(net, pixels, [0.0], [1.0])
    assert name == "features.1" and maps[:, :8, :8].mean() > 0.9 and maps[:, 8:, 8:].mean() < 0.1


def test_target_layer_ignores_convs_that_run_after_forward_features():
    # Like timm's VGG, whose pre_logits convs run in forward_head (a real VGG is 130 M parameters: too slow here).
    class VggLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
            self.pre_logits = nn.Conv2d(4, 8, 4)
            self.fc = nn.Linear(8, 2)

        def forward_features(self, x):
            return self.features(x)

        def forward(self, x):
            return self.fc(self.pre_logits(self.forward_features(x)).mean((2, 3)))

    assert find_target_layer(VggLike(), torch.zeros(1, 3, 8, 8))[0] == "features.2"


def test_target_layer_prefers_a_spatial_map_and_rejects_models_without_convs():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 8), nn.Flatten(), nn.Linear(4, 2))
    name, _ = find_target_layer(model, torch.zeros(1, 3, 8, 8))  # the 8x8 kernel leaves a 1x1 map
    assert name == "0"
    with pytest.raises(ImgclfError, match="needs a convolutional layer"):
        find_target_layer(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), torch.zeros(1, 3, 2, 2))


def test_heatmaps_follow_the_evidence():
    # A model whose only evidence for class 1 is the top-left quadrant: Grad-CAM must light up there.
    conv = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.ones_(conv.weight)

    class TopLeft(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(conv)

        def forward_features(self, x):
            return self.features(x)

        def forward(self, x):
            f = self.forward_features(x)
            return torch.stack([f[:, 0, 8:, 8:].mean((1, 2)), f[:, 0, :8, :8].mean((1, 2))], 1)

    pixels = np.full((2, 16, 16, 1), 40, dtype=np.uint8)
    pixels[:, :8, :8] = 250
    maps, name = gradcam_heatmaps(TopLeft(), pixels, [0.0], [1.0])
    assert maps.shape == (2, 16, 16) and name == "features.0"
    assert 0.0 <= maps.min() and maps.max() <= 1.0
    assert maps[:, :8, :8].mean() > 0.9 and maps[:, 8:, 8:].mean() < 0.1


class _TwoQuadrants(nn.Module):
    """Class 0: evidence of a dark bottom-right quadrant; class 1: of a bright top-left one, twice as strong. Its
    1x1 convolution's channel 0 is the pixels, channel 1 their negative (bright where the image is dark)."""

    def __init__(self):
        super().__init__()
        conv = nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            conv.bias.copy_(torch.tensor([0.0, 1.0]))
        self.features = nn.Sequential(conv)

    def forward(self, x):
        f = self.features(x)
        return torch.stack([f[:, 1, 8:, 8:].mean((1, 2)), 2 * f[:, 0, :8, :8].mean((1, 2))], 1)


def test_heatmaps_explain_the_class_asked_for():
    """A caption's label (multi-label reports: the most probable by the stored probabilities) may not be this
    network's top class: the map is of the class asked for."""
    pixels = np.full((1, 16, 16, 1), 20, dtype=np.uint8)
    pixels[:, :8, :8] = 250
    top, _ = gradcam_heatmaps(_TwoQuadrants(), pixels, [0.0], [1.0])  # class 1 is the top
    asked, _ = gradcam_heatmaps(_TwoQuadrants(), pixels, [0.0], [1.0], classes=[0])
    assert top[:, :8, :8].mean() > top[:, 8:, 8:].mean()
    assert asked[:, 8:, 8:].mean() > asked[:, :8, :8].mean()


def test_explain_run_writes_the_gradcam_figure(tiny_run, tmp_path, monkeypatch):
    import imgclf.evaluation.explain as explain
    from imgclf.evaluation.interpret import Interpretation

    asked = []
    real = explain.gradcam_heatmaps
    monkeypatch.setattr(explain, "gradcam_heatmaps", lambda *a, **k: asked.append(k.get("classes")) or real(*a, **k))
    out = tmp_path / "gradcam.png"
    result = explain_run(tiny_run, out=out, n_correct=3, n_wrong=3)
    # each map is of the class its caption names, the stored prediction (the network's top now may differ: a run
    # predicted in bf16, redrawn in fp32, near a tie, showed a map of another class under the caption's)
    stored = set(Interpretation.from_run(tiny_run).y_pred.tolist())
    assert asked and asked[0] is not None and len(asked[0]) == 6 and set(asked[0]) <= stored
    assert result["path"] == out and result["correct"] + result["wrong"] == 6
    assert result["layer"].startswith("features.")
    with Image.open(out) as img:
        assert img.format == "PNG" and min(img.size) > 300


def _two_quadrant_classifier():
    """A Classifier whose class "dark" is evidence of a dark bottom-right quadrant and "bright" of a bright top-left
    one (twice as strong): each image's map must light the quadrant of its own prediction."""
    from imgclf.inference import Classifier
    from imgclf.records import ModelCard

    card = ModelCard(architecture="two-quadrants", classes=["dark", "bright"], img_size=16, in_chans=1,
                     color="grayscale", mean=[0.0], std=[1.0], num_params=4)
    return Classifier(_TwoQuadrants(), card)


def _quadrant_files(folder):
    bright = np.full((16, 16), 20, dtype=np.uint8)
    bright[:8, :8] = 250
    Image.fromarray(bright).save(folder / "bright.png")
    dark = np.full((16, 16), 90, dtype=np.uint8)
    dark[8:, 8:] = 0
    Image.fromarray(dark).save(folder / "dark.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return [str(folder / "bright.png"), str(folder / "broken.png"), str(folder / "dark.png")]


def test_explain_images_maps_each_image_by_its_own_prediction_and_reports_unreadable_files(tmp_path):
    from imgclf.evaluation.explain import explain_images

    clf = _two_quadrant_classifier()
    bright, broken, dark = explain_images(clf, _quadrant_files(tmp_path))
    assert [e.path for e in (bright, broken, dark)] == _quadrant_files(tmp_path)
    assert (bright.prediction.label, bright.explained) == ("bright", "bright")
    assert (dark.prediction.label, dark.explained) == ("dark", "dark")
    assert bright.prediction.path == bright.path  # named by its file, as predict names it
    assert bright.heatmap.shape == (16, 16) and bright.image.shape == (16, 16, 1)
    assert bright.heatmap[:8, :8].mean() > 0.9 and bright.heatmap[8:, 8:].mean() < 0.1
    assert dark.heatmap[8:, 8:].mean() > 0.9 and dark.heatmap[:8, :8].mean() < 0.1
    assert broken.heatmap is None and broken.explained is None and broken.prediction.error


def test_explain_images_shows_the_class_asked_for_on_every_image(tmp_path):
    from imgclf.evaluation.explain import explain_images

    bright, _, dark = explain_images(_two_quadrant_classifier(), _quadrant_files(tmp_path), label="dark")
    assert bright.prediction.label == "bright" and bright.explained == "dark"
    assert bright.heatmap[8:, 8:].mean() > bright.heatmap[:8, :8].mean()
    with pytest.raises(ImgclfError, match=r"label must be one of \{bright, dark\}.*Received: label='Dark'"):
        explain_images(_two_quadrant_classifier(), _quadrant_files(tmp_path), label="Dark")
    # class folders named 0 and 1, asked for as numbers: "label must be one of {0, 1}. Received: label=1"
    numbered = _two_quadrant_classifier()
    numbered.card.classes = ["0", "1"]
    bright, _, _ = explain_images(numbered, _quadrant_files(tmp_path), label=np.int64(0))  # an int of numpy too
    assert bright.explained == "0"


def test_explain_command_prints_a_line_per_image_and_writes_the_figure(tiny_run, image_folder, tmp_path):
    from typer.testing import CliRunner

    from imgclf.cli import app

    (tmp_path / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "why.png"
    folder = image_folder / "cat"
    result = CliRunner().invoke(app, ["explain", str(tiny_run), str(tmp_path / "broken.png"), str(folder),
                                      "--max-images", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()  # one per image, in the order given, then the figure
    # --max-images 4 explains 4 images: the unreadable file first does not take one's place (3 were explained)
    assert len(lines) == 6 and lines[-1].startswith(f"figure: {out} (the first 5 of 21 files")
    assert lines[0].startswith(f"{tmp_path / 'broken.png'}: unreadable")
    assert "no installed font draws" not in result.stderr
    # a name the figure draws as boxes is said, as train and report say it (explain drew them without a word)
    odd = tmp_path / "\U00013000 cat.png"
    shutil.copy(next(folder.iterdir()), odd)
    said = CliRunner().invoke(app, ["explain", str(tiny_run), str(odd), "-o", str(tmp_path / "odd.png")])
    assert said.exit_code == 0 and "1 class or file name ('\U00013000 cat.png') holds characters no installed font " \
        "draws" in " ".join(said.stderr.split()), said.stderr
    # a name with a tab is drawn escaped: no font helps it, so no advice to install one
    tabbed = tmp_path / "a\tb.png"
    shutil.copy(next(folder.iterdir()), tabbed)
    quiet = CliRunner().invoke(app, ["explain", str(tiny_run), str(tabbed), "-o", str(tmp_path / "tab.png")])
    assert quiet.exit_code == 0 and "no installed font draws" not in quiet.stderr, quiet.stderr
    assert all(line.startswith(str(folder)) and "unreadable" not in line for line in lines[1:5])
    with Image.open(out) as img:
        assert img.format == "PNG" and min(img.size) > 200
    result = CliRunner().invoke(app, ["explain", str(tiny_run), str(tmp_path / "broken.png"), "-o",
                                      str(tmp_path / "none.png")])
    assert result.exit_code == 2 and "none readable" in result.stderr and not (tmp_path / "none.png").exists()
    result = CliRunner().invoke(app, ["explain", str(tiny_run), str(folder), "-o", str(tmp_path / "why.jpg")])
    assert result.exit_code == 2 and "output must be a file name ending in .png" in result.stderr


def test_the_python_api_explains_and_draws(tiny_run, image_folder, tmp_path):
    import imgclf

    with pytest.raises(ImgclfError, match=r"out must be a file name ending in \.png.*Received: out="):
        imgclf.explain(tiny_run, str(image_folder / "cat"), out=tmp_path / "why.svg")
    pixels = np.asarray(Image.open(sorted((image_folder / "dog").iterdir())[0]).convert("RGB"))
    explanations = imgclf.explain(tiny_run, [pixels, str(image_folder / "cat")], out=tmp_path / "why.png")
    assert len(explanations) == 21 and explanations[0].path == "images[0]"
    plain = imgclf.load(tiny_run).predict([pixels])[0]
    assert explanations[0].prediction.label == plain.label == explanations[0].explained
    assert all(e.heatmap.shape == (16, 16) and 0 <= e.heatmap.min() <= e.heatmap.max() <= 1 for e in explanations)
    with Image.open(tmp_path / "why.png") as img:
        assert img.format == "PNG"


def test_the_figure_draws_at_most_48_images(monkeypatch, tmp_path):
    """A thousand images would draw at about 5 dpi within the figures' pixel cap: the figure keeps the first 48
    readable ones."""
    from imgclf.evaluation import explain, plots
    from imgclf.inference import Prediction

    drawn = {}
    monkeypatch.setattr(plots, "plot_gradcam_grid", lambda samples, path, **kw: drawn.setdefault("n", len(samples)))
    image, heatmap = np.zeros((8, 8, 1), np.uint8), np.zeros((8, 8), np.float32)
    many = [explain.Explanation(f"{i}.png", Prediction(f"{i}.png", "a", 0.9, [("a", 0.9)], best_label="a"), "a",
                                heatmap, image) for i in range(60)]
    broken = explain.Explanation("x.png", Prediction("x.png", None, None, [], "unreadable", unknown=None))
    explain.plot_explanations([broken, *many], tmp_path / "f.png")
    assert drawn["n"] == explain.FIGURE_IMAGES == 48


def test_an_in_place_activation_after_the_layer_does_not_change_its_map():
    """pytorch-grad-cam keeps the layer's output, detached (on a CPU the same memory): model_s's in-place ReLU
    after its last convolution overwrote it, so its maps were the ReLU's output times the convolution's gradients
    (up to 0.5 off the true map). The same network with out-of-place activations must give the same maps."""
    import copy

    torch.manual_seed(0)
    model = create_model("model_s", 4, in_chans=1, img_size=16).eval()
    assert any(getattr(m, "inplace", False) for m in model.modules())  # the premise: it has them
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if getattr(m, "inplace", False):
            m.inplace = False
    pixels = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 1), dtype=np.uint8)
    maps, layer = gradcam_heatmaps(model, pixels, [0.5], [0.25], classes=[0, 1, 2])
    expected, same_layer = gradcam_heatmaps(plain, pixels, [0.5], [0.25], classes=[0, 1, 2])
    assert layer == same_layer and np.allclose(maps, expected, atol=1e-5), np.abs(maps - expected).max()
    assert any(getattr(m, "inplace", False) for m in model.modules())  # the caller's network is left as it was


def test_captions_tell_the_images_apart(monkeypatch, tmp_path):
    """Four phone photos all read IMG_20240…00.png, and cross/000.png beside triangle/000.png both 000.png."""
    from imgclf.evaluation import explain, plots
    from imgclf.inference import Prediction

    drawn = {}
    monkeypatch.setattr(plots, "plot_gradcam_grid", lambda samples, path, **kw: drawn.setdefault("s", samples))
    image, heatmap = np.zeros((8, 8, 1), np.uint8), np.zeros((8, 8), np.float32)
    paths = [f"photos/IMG_20240101_12{m}00.png" for m in ("00", "05", "10", "15")] + ["a/cross/000.png",
                                                                                   "b/triangle/000.png"]
    shown = [explain.Explanation(p, Prediction(p, "a", 0.9, [("a", 0.9)], best_label="a"), "a", heatmap, image)
             for p in paths]
    explain.plot_explanations(shown, tmp_path / "f.png")
    names = [s["caption"].split("\n")[0] for s in drawn["s"]]
    assert len(set(names)) == 6 and all(len(n) <= 20 for n in names), names
    assert names[4].startswith("cross/") and names[5].startswith("triangle/")


def test_class_names_in_captions_are_cut_to_tell_the_runs_classes_apart(monkeypatch, tmp_path):
    """Cut to 10 characters alone, species_110_xx, species_119_xx and a wrong species_74_xx each read
    "specie…_xx", and "class 16/4/70 with space" each "class …ace": the figure could not show the mistake."""
    from imgclf.evaluation import explain, plots
    from imgclf.inference import Prediction
    from imgclf.plotting import reads_as

    drawn = []
    monkeypatch.setattr(plots, "plot_gradcam_grid", lambda samples, path, **kw: drawn.append(samples))
    image, heatmap = np.zeros((8, 8, 1), np.uint8), np.zeros((8, 8), np.float32)
    classes = [f"species_{i}_xx" for i in range(120)] + [f"the_common_start_of_all_{i:03d}_and_the_same_end"
                                                        for i in range(100)]
    for predicted in (["species_110_xx", "species_119_xx", "species_74_xx"], ["the_common_start_of_all_042_and_"
                                                                             "the_same_end"]):  # one alone, too
        shown = [explain.Explanation(f"{i}.png", Prediction(f"{i}.png", c, 0.5, [(c, 0.5)], best_label=c), c,
                                     heatmap, image) for i, c in enumerate(predicted)]
        explain.plot_explanations(shown, tmp_path / "f.png", classes=classes)
        said = [s["caption"].split("\n")[1].rsplit(" ", 1)[0] for s in drawn.pop()]
        assert all([c for c in classes if reads_as(label, c)] == [name] for label, name in zip(said, predicted)), \
            said
    # an image scored unknown says so around the class: within the 40 characters a cell holds at 3 columns
    long = [f"Eastern_Yellow_Bellied_Racer_{i}" for i in range(3)]
    shown = [explain.Explanation(f"{i}.png", Prediction(f"{i}.png", "unknown", 0.5, [(c, 0.5)], best_label=c,
                                                        unknown=True), c, heatmap, image) for i, c in enumerate(long)]
    explain.plot_explanations(shown, tmp_path / "f.png", classes=long)
    lines = [line for s in drawn.pop() for line in s["caption"].split("\n")]
    assert all(len(line) <= 40 for line in lines) and any(line.startswith("unknown (closest") for line in lines), lines


def test_captions_take_folders_until_names_differ_and_a_lone_name_its_room(monkeypatch, tmp_path):
    """x/br/br_000.png and y/br/br_000.png both read br/br_000.png; a lone image's long name was cut to 16
    characters in a 700 px figure; and "unknown (red 0.71)" read as a probability of being unknown."""
    from imgclf.evaluation import explain, plots
    from imgclf.inference import Prediction

    drawn = []
    monkeypatch.setattr(plots, "plot_gradcam_grid", lambda samples, path, **kw: drawn.append(samples))
    image, heatmap = np.zeros((8, 8, 1), np.uint8), np.zeros((8, 8), np.float32)

    def figure(paths, unknown=False):
        shown = [explain.Explanation(p, Prediction(p, "unknown" if unknown else "a", 0.71, [("a", 0.71)],
                                                   best_label="a", unknown=unknown), "a", heatmap, image)
                 for p in paths]
        explain.plot_explanations(shown, tmp_path / "f.png")
        return [s["caption"].split("\n") for s in drawn.pop()]

    names = [c[0] for c in figure(["x/br/br_000.png", "y/br/br_000.png", "y/br/br_001.png"])]
    assert names == ["x/br/br_000.png", "y/br/br_000.png", "br_001.png"]
    long = "a_very_long_file_name_number_one.png"
    ((name, said),) = figure([f"odd/{long}"], unknown=True)
    assert name == long and said == "unknown (closest a 0.71)"


def test_the_scale_caption_fits_a_figure_of_one_image(tiny_run, image_folder, tmp_path):
    """The line under the colour scale was cut at both edges under 1-4 images: the figure is as wide as it."""
    from PIL import Image

    import imgclf
    from imgclf.evaluation.plots.image_grids import GRADCAM_SCALE_TITLE
    from imgclf.evaluation.plots.layout import CAPTION_PT, text_px

    imgclf.explain(tiny_run, [next((image_folder / "cat").iterdir())], out=tmp_path / "one.png")
    with Image.open(tmp_path / "one.png") as figure:
        assert figure.width >= text_px(GRADCAM_SCALE_TITLE, CAPTION_PT, "bold") + 20  # drawn bold, as titles are


def test_an_output_that_is_one_of_the_runs_own_files_is_refused_and_the_run_kept(tiny_run, image_folder, tmp_path):
    """predict RUN -o RUN/predictions.csv replaced the evaluation's table (the report then refused the run), and
    -o RUN/model.safetensors the weights (every later command refused them as changed); explain likewise."""
    import shutil

    from typer.testing import CliRunner

    import imgclf
    from imgclf.cli import app
    from imgclf.errors import ImgclfError

    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    image = str(next((image_folder / "cat").iterdir()))
    for command, name, said in (("predict", "predictions.csv", "the run's predictions.csv"),
                                ("predict", "model.safetensors", "the run's model.safetensors"),
                                ("predict", "checkpoints/table.csv", "in the run's checkpoints/"),
                                ("explain", "plots/why.png", "in the run's plots/")):
        result = CliRunner().invoke(app, [command, str(run), image, "-o", str(run / name)])
        assert result.exit_code == 2 and f"(it is {said})" in " ".join(result.output.split()), result.output
    with pytest.raises(ImgclfError, match=r"^out must be a file that is not one of the run's own files"):
        imgclf.explain(run, [image], out=run / "plots" / "why.png")
    with pytest.MonkeyPatch.context() as m:  # the run named through ~, as run_dir takes it
        m.setenv("HOME", str(tmp_path))
        with pytest.raises(ImgclfError, match=r"^out must be a file that is not one of the run's own files"):
            imgclf.explain("~/run", [image], out="~/run/plots/why.png")
    # a run that is not there: that is the error, not the output's place in it
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "nope"), image, "-o",
                                      str(tmp_path / "nope" / "predictions.csv")])
    assert result.exit_code == 2 and "run must be" in result.output and "output must" not in result.output, \
        result.output
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    # a file of the user's own beside the run's files is written
    result = CliRunner().invoke(app, ["predict", str(run), image, "-o", str(run / "new-images.csv")])
    assert result.exit_code == 0 and (run / "new-images.csv").is_file(), result.output
    (run / "new-images.csv").unlink()  # the suite's walk reads every run folder's files


def test_an_output_that_is_an_image_of_a_folder_given_is_refused_and_the_image_kept(tiny_run, image_folder,
                                                                                   tmp_path):
    """predict RUN folder -o folder/photo.png wrote the table over the photo, and explain the figure, as if the
    photo were an earlier output: only a figure of ours or a table written as text there is replaced."""
    import shutil

    from typer.testing import CliRunner

    import imgclf
    from imgclf.cli import app
    from imgclf.errors import ImgclfError

    folder = Path(shutil.copytree(image_folder / "cat", tmp_path / "cat"))
    photo = sorted(folder.iterdir())[0]
    before = photo.read_bytes()
    for command in ("explain", "predict"):
        result = CliRunner().invoke(app, [command, str(tiny_run), str(folder), "-o", str(photo)])
        assert result.exit_code == 2 and f"it is an image in {folder}" in " ".join(result.output.split()), \
            result.output
        assert photo.read_bytes() == before
    import numpy as np

    for given in (str(folder), [str(folder), np.zeros((8, 8, 3), np.uint8)]):  # with an array: not walked
        with pytest.raises(ImgclfError, match="out must be a file other than the images in the folders given"):
            imgclf.explain(tiny_run, given, out=photo)
        assert photo.read_bytes() == before
    from PIL import Image

    from imgclf.inputs import _replaceable

    def too_large(*args, **kwargs):
        raise Image.DecompressionBombError("too many pixels")

    with pytest.MonkeyPatch.context() as m:  # a photo over PIL's pixel limit is still the user's image
        m.setattr(Image, "open", too_large)
        assert _replaceable(str(photo)) is False
    table = folder / "table.png"  # predict's table written as text under an image's name: replaced, not read
    table.write_text("path,label\n")
    result = CliRunner().invoke(app, ["predict", str(tiny_run), str(folder), "-o", str(table)])
    rows = table.read_text().splitlines()
    assert result.exit_code == 0 and len(rows) == len(list(folder.iterdir())) - 1, result.output
    assert not any(row.startswith(str(table)) for row in rows)


def test_an_output_that_is_one_of_the_images_is_refused_and_the_image_kept(tiny_run, image_folder, tmp_path):
    """explain -o photo.png (and predict -o photo.png) overwrote the user's photo with the figure (or the table),
    and a second explain of a folder explained its own earlier figure."""
    import shutil

    from typer.testing import CliRunner

    from imgclf.cli import app

    folder = Path(shutil.copytree(image_folder / "cat", tmp_path / "cat"))
    photo = sorted(folder.iterdir())[0]
    before = photo.read_bytes()
    for command in (["explain", str(tiny_run), str(photo), "-o", str(photo)],
                    ["predict", str(tiny_run), str(photo), "-o", str(photo)]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2 and "output must be a file other than the images given" in \
            " ".join(result.output.split()), result.output
        assert photo.read_bytes() == before
    # found by a folder walk, the output is the figure an earlier explain wrote there: left out and replaced
    figure = folder / "explain.png"
    for _ in range(2):
        result = CliRunner().invoke(app, ["explain", str(tiny_run), str(folder), "-o", str(figure)])
        assert result.exit_code == 0 and f"{figure}:" not in result.output, result.output
    import imgclf
    from imgclf.errors import ImgclfError

    with pytest.raises(ImgclfError, match="out must be a file other than the images given"):
        imgclf.explain(tiny_run, [str(photo)], out=photo)  # the API, as the command line
    assert photo.read_bytes() == before
    # the API's own folder walk leaves its earlier figure out too: it explained it as one more image of the folder
    for _ in range(2):
        explained = imgclf.explain(tiny_run, str(folder), out=figure)
        assert str(figure) not in [e.path for e in explained]
        assert len(explained) == sum(1 for p in folder.iterdir() if p != figure)
    many = [str(folder)] * 1 + [str(p) for p in sorted(folder.iterdir())]
    result = CliRunner().invoke(app, ["explain", str(tiny_run), *many, "-o", str(tmp_path / "f.png"),
                                      "--max-images", "2"])
    assert result.exit_code == 0 and "--max-images explains more" in result.output


def test_a_multi_label_map_of_a_label_given_names_it_a_label_with_its_probability(monkeypatch, tmp_path):
    """explain --label red on a multi-label run: the title said "the class 'red'" and the caption "map: red",
    without red's probability, so whether red was carried could not be read."""
    from imgclf.evaluation import explain, plots
    from imgclf.inference import Prediction

    drawn = {}
    monkeypatch.setattr(plots, "plot_gradcam_grid",
                        lambda samples, path, **kw: drawn.update(samples=samples, **kw))
    image, heatmap = np.zeros((8, 8, 1), np.uint8), np.zeros((8, 8), np.float32)
    p = Prediction("x.png", "blue", 0.9, [("blue", 0.9), ("red", 0.4)], best_label="blue", labels=[("blue", 0.9)])
    explain.plot_explanations([explain.Explanation("x.png", p, "red", heatmap, image)], tmp_path / "f.png",
                              label="red", multilabel=True)
    assert drawn["samples"][0]["caption"].split("\n")[-1] == "map: red 0.40"
    assert drawn["target"] == "the label 'red'"


def test_explaining_as_many_files_as_the_figure_draws_still_points_to_max_images(tiny_run, tmp_path, monkeypatch):
    """At the default --max-images, equal to what the figure draws, the command said "the lines above show the
    rest" of files it had neither explained nor printed (48 of 183)."""
    from PIL import Image
    from typer.testing import CliRunner

    import imgclf.evaluation.explain as explain
    from imgclf.cli import app

    monkeypatch.setattr(explain, "FIGURE_IMAGES", 2)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in range(4):
        Image.new("RGB", (16, 16), (40 * k, 90, 200)).save(folder / f"{k}.png")
    result = CliRunner().invoke(app, ["explain", str(tiny_run), str(folder), "-o", str(tmp_path / "f.png"),
                                      "--max-images", "2"])
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "the first 2 of 4 files; --max-images explains more" in text, text
    assert "the lines above show the rest" not in text


def test_the_colour_scale_shows_the_overlay_as_it_lies_on_the_grey_images():
    """The bar was drawn over white while the maps lie on the images in grey, so its colours were paler than any
    map's: each point of the bar is the colour map at that value over mid grey, at the overlay's alpha."""
    import matplotlib
    import matplotlib.pyplot as plt

    from imgclf.evaluation.plots import image_grids
    from imgclf.plotting import style

    with style():
        fig = plt.figure(figsize=(6, 2), dpi=100)
        image_grids._gradcam_scale(fig)
        fig.canvas.draw()
        pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float)
        box = fig.axes[-1].get_window_extent()
        plt.close(fig)
    row = int(pixels.shape[0] - (box.y0 + box.height / 2))
    for value in (0.05, 0.5, 0.95):
        drawn = pixels[row, int(box.x0 + value * box.width)]
        colour = np.array(matplotlib.colormaps[image_grids.GRADCAM_CMAP](value)[:3]) * 255
        alpha = image_grids.GRADCAM_ALPHA
        assert np.abs(drawn - (alpha * colour + (1 - alpha) * 128)).max() <= 4, (value, drawn)


@pytest.mark.parametrize("multilabel", [False, True])
def test_a_full_figure_keeps_its_text_readable(tmp_path, multilabel):
    """48 images whose captions leave 4 columns were 12 rows, which the longest-side cap shrank to 466 px wide with
    6 px text; a multi-label image's eight carried labels ran as one line over its neighbours' captions."""
    from imgclf import plotting
    from imgclf.evaluation import explain
    from imgclf.inference import Prediction

    labels = [(f"label_{k}", 0.9) for k in range(8)]
    image, heatmap = np.zeros((8, 8, 3), np.uint8), np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    many = [explain.Explanation(f"holiday_photo_{i:03d}.png",
                                Prediction(f"{i}.png", "square", 0.97, [("square", 0.97)], best_label="square",
                                           unknown=not multilabel, labels=labels if multilabel else None),
                                "square", heatmap, image) for i in range(48)]
    path = explain.plot_explanations(many, tmp_path / "f.png", multilabel=multilabel)
    with Image.open(path) as img:
        smallest = float(img.info[plotting.TEXT_PX_KEY])
        width = img.size[0]
    assert smallest >= plotting.MIN_FONT_PT * plotting.DPI / 72 - 0.1 and width >= plotting.FULL_WIDTH_PX - 10
    if multilabel:
        caption = explain._label_set_lines([name for name, _ in labels])
        assert caption.replace("\n", " ").endswith("label_5 + 2 more"), caption
        assert max(len(line) for line in caption.splitlines()) <= 24


def test_an_explained_image_of_no_known_class_is_captioned_neither_right_nor_wrong(monkeypatch, tmp_path):
    """`imgclf explain` knows no true class, yet every caption was green, the colour of a right answer (unknowns
    and wrong answers included). The report's grids, which know the truth, stay green and red."""
    from matplotlib.colors import to_hex

    from imgclf import plotting
    from imgclf.evaluation import explain
    from imgclf.evaluation.plots import image_grids
    from imgclf.inference import Prediction

    colours = []
    saved = image_grids.save_figure

    def keep_colours(fig, path, **kwargs):
        colours.append({to_hex(ax.title.get_color()) for ax in fig.axes if ax.get_title()})
        return saved(fig, path, **kwargs)

    monkeypatch.setattr(image_grids, "save_figure", keep_colours)
    image, heatmap = np.zeros((8, 8, 3), np.uint8), np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    explain.plot_explanations([explain.Explanation("a.png", Prediction("a.png", "a", 0.9, [("a", 0.9)],
                                                                       best_label="a"), "a", heatmap, image)],
                              tmp_path / "f.png")
    image_grids.plot_gradcam_grid([{"image": image, "heatmap": heatmap, "true": "a", "pred": "b", "prob": 0.6,
                                    "correct": False},
                                   {"image": image, "heatmap": heatmap, "true": "a", "pred": "a", "prob": 0.6}],
                                  tmp_path / "g.png")
    assert plotting.RIGHT_COLOR not in colours[0] and plotting.WRONG_COLOR not in colours[0]
    assert colours[1] >= {plotting.RIGHT_COLOR, plotting.WRONG_COLOR}
