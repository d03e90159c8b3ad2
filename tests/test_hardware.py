"""Precision is chosen from what the CPU can do, not assumed: bf16 only where it is native."""

import pytest

from imgclf import hardware


@pytest.fixture
def flags(monkeypatch):
    def set_flags(*names: str) -> None:
        monkeypatch.setattr(hardware, "cpu_flags", lambda: set(names))
        monkeypatch.setattr("torch.cuda.is_available", lambda: False)

    return set_flags


@pytest.mark.parametrize("cpu, expected", [
    (("avx2", "fma"), "32"),                        # AVX2 only: bf16 would be emulated, slower than fp32
    (("avx2", "avx512f"), "32"),                    # AVX-512 without its BF16 extension: still emulated
    (("avx512f", "avx512_bf16"), "bf16-mixed"),     # native bf16 dot products
    (("avx512f", "amx_bf16", "amx_tile"), "bf16-mixed"),
])
def test_auto_precision_follows_the_cpu_flags(flags, cpu, expected):
    flags(*cpu)
    assert hardware.resolve_precision("auto", "cpu") == expected
    assert hardware.resolve_precision("auto", "auto") == expected


def test_an_explicit_precision_is_kept_whatever_the_cpu(flags):
    flags("avx2")
    assert hardware.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    flags("avx512_bf16")
    assert hardware.resolve_precision("32", "cpu") == "32"


@pytest.mark.parametrize("cpu, asked, trained", [
    (("avx512f", "avx512_bf16"), None, "bf16-mixed"),  # the default is auto: native bf16 is used
    (("avx2", "fma"), None, "32"),                      # ...and fp32 where bf16 would be emulated
    (("avx512f", "avx512_bf16"), "32", "32"),           # an explicit --precision 32 keeps fp32 anywhere
])
def test_a_run_trains_in_the_precision_its_cpu_runs_fast_by_default(flags, tmp_path, image_folder, cpu, asked,
                                                                      trained):
    import imgclf
    from imgclf.records import RunDir

    flags(*cpu)
    settings = {"data": str(image_folder), "model": "simple_cnn", "img_size": 16, "epochs": 1, "batch_size": 16,
                "model_args": {"width": 4}, "out": str(tmp_path / "run"), "progress": False,
                "group_duplicates": False, "calibrate": "none"}
    if asked:
        settings["precision"] = asked
    run = imgclf.fit(settings)
    assert RunDir(run.path).read_card().training.precision == trained
