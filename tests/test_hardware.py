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
