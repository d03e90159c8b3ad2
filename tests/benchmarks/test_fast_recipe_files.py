"""benchmarks/fast_recipe.py's result files: a variant measured on a stand-in is named and labelled by it, and
docs/results.md lists it in the stand-ins' table (it was filed as a Fashion-MNIST variant and shown nowhere)."""

from __future__ import annotations

import argparse
import json

from benchmarks import fast_recipe, report_results

RUN = {"seed": 0, "test_accuracy": 0.85, "val_accuracy": 0.81, "epochs": 59, "images_per_s": 693.0, "width": 16}


class FakeBench:
    def __init__(self, folder):
        self.results = folder

    def write_result(self, name, payload):
        path = self.results / f"{name}.json"
        path.write_text(json.dumps({"benchmark": name, "environment": {"isa": ["avx2"]}, **payload}))
        return path


def test_a_stand_in_variant_is_named_labelled_and_listed_with_the_stand_ins(tmp_path):
    args = argparse.Namespace(time_limit="2m", tag="fixed-w16", stand_in="s5", recipe="fast")
    path = fast_recipe._write(FakeBench(tmp_path), args, "fast", [RUN], ["--sizing", "fixed"], together=False)
    assert path.name == "fast_variant_2m_s5_fixed-w16.json"
    written = json.loads(path.read_text())
    assert written["stand_in"] == "s5" and written["data"].startswith("stand-in s5: Fashion-MNIST 150/class")
    assert "--stand-in s5" in written["command"] and written["command"].endswith("--sizing fixed")
    table = "\n".join(report_results.fast_sizing_section(tmp_path))
    row = next(line for line in table.splitlines() if line.startswith("| stand-in s5"))
    assert "not sized: `--sizing fixed`" in row and "85.00 %" in row


def test_a_variant_on_fashion_mnist_keeps_its_name_and_label(tmp_path):
    args = argparse.Namespace(time_limit="10m", tag="b128", stand_in=None, recipe="fast-fmnist")
    path = fast_recipe._write(FakeBench(tmp_path), args, "fast-fmnist", [RUN], ["--batch-size", "128"], False)
    written = json.loads(path.read_text())
    assert path.name == "fast_variant_10m_b128.json"
    assert (written["stand_in"], written["data"]) == (None, "Fashion-MNIST 55k/5k/10k")
