"""trust_unknowns' --set: extra training settings for a variant, always under a tag of their own."""

from __future__ import annotations

import pytest

from benchmarks.trust_unknowns import build_parser, training


def test_settings_reach_the_training_values_and_the_run_name():
    args = build_parser().parse_args(["--time-limit", "10m", "--set", "label_smoothing=0", "--set",
                                      "augment=hflip", "--tag", "_ls0"])
    name, values = training(args, smoke=False)
    assert values == {"time_limit": "10m", "label_smoothing": 0, "augment": "hflip"}
    assert name == "10m_ls0"  # the variant's runs never replace the recipe's own


def test_untagged_settings_and_malformed_ones_are_refused():
    with pytest.raises(ValueError, match="needs a --tag"):
        training(build_parser().parse_args(["--set", "label_smoothing=0"]), smoke=False)
    with pytest.raises(ValueError, match="KEY=VALUE. Received: 'label_smoothing'"):
        training(build_parser().parse_args(["--set", "label_smoothing", "--tag", "_x"]), smoke=False)
