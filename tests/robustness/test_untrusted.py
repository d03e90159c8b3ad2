"""Files that travel between people never run code: safetensors, weights_only loads, validated cards."""

import json
import os
import pickle

import pytest

from conftest import spoilable_copy
import torch

from imgclf.records import load_card
from imgclf.errors import ImgclfError
from imgclf.inference import Classifier


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_checkpoint_is_refused_on_resume_and_does_not_execute(tiny_run, tmp_path):
    import imgclf

    run = spoilable_copy(tiny_run, tmp_path / "run")
    marker = tmp_path / "pwned"
    with open(run / "checkpoints" / "last.ckpt", "wb") as f:
        pickle.dump({"state_dict": _Payload(marker)}, f)
    with pytest.raises(Exception) as info:
        imgclf.fit(None, resume=str(run), epochs=6)  # more than its 5: refused for the file, not the count
    assert not marker.exists(), "unpickling ran the payload"
    assert "weights_only" in str(info.value) or "Unsupported" in str(info.value) or "global" in str(info.value).lower()


def test_torch_load_with_weights_only_refuses_payload(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"w": _Payload(marker)}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not marker.exists()


def test_invalid_model_card_is_refused_before_use(tiny_run, tmp_path):
    run = spoilable_copy(tiny_run, tmp_path / "run")
    card = json.loads((run / "model.json").read_text())
    for change, message in [({"architecture": "../../etc/passwd"}, "architecture"),
                            ({"mean": [0.5]} if card["in_chans"] == 3 else {"mean": [0.5, 0.5]}, "mean and std"),
                            ({"classes": ["only"]}, "classes"),
                            ({"img_size": -3}, "img_size")]:
        (run / "model.json").write_text(json.dumps({**card, **change}))
        with pytest.raises(ImgclfError, match=message):
            load_card(run)
    (run / "model.json").write_text("{not json")
    with pytest.raises(ImgclfError, match="model.json .* cannot be read"):
        Classifier.load(run)


def test_weights_that_do_not_match_the_card_are_refused(tiny_run, tmp_path):
    run = spoilable_copy(tiny_run, tmp_path / "run")
    card = json.loads((run / "model.json").read_text())
    card["model_args"] = {"width": 16}
    (run / "model.json").write_text(json.dumps(card))
    with pytest.raises(ImgclfError, match="does not match its model.json"):
        Classifier.load(run)


@pytest.mark.parametrize("name", ["model.safetensors", "unknown.safetensors"])
def test_a_weight_file_whose_bytes_changed_since_the_card_is_refused(name, tiny_run, tmp_path):
    """64 flipped bytes inside a weight tensor loaded without complaint: evaluate then scored 10 % and replaced
    the run's metrics.json, predict answered garbage, export exported it."""
    from typer.testing import CliRunner

    from imgclf.cli import app

    assert name in load_card(tiny_run).file_sha256  # the run as trained carries the digests, and loads
    Classifier.load(tiny_run)
    run = spoilable_copy(tiny_run, tmp_path / "run")
    data = bytearray((run / name).read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")  # safetensors: an 8-byte length, a JSON header, the tensors
    middle = header + (len(data) - header) // 2
    data[middle:middle + 64] = bytes(b ^ 0x5A for b in data[middle:middle + 64])
    (run / name).write_bytes(bytes(data))
    with pytest.raises(ImgclfError, match=rf"^run must be a run directory whose {name} is the file its model.json "
                                          r"was written with.*SHA-256 differs"):
        Classifier.load(run)
    metrics = (run / "metrics.json").read_bytes()
    result = CliRunner().invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 2 and "SHA-256 differs" in result.stderr, result.output
    assert (run / "metrics.json").read_bytes() == metrics
