import json


def test_tiny_run_writes_the_run_directory(tiny_run):
    for name in ("config.yaml", "dataset.json", "model.safetensors", "model.json", "history.csv",
                 "predictions.csv", "metrics.json", "checkpoints/last.ckpt"):
        assert (tiny_run / name).exists(), name
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.5
