"""docs/results.md's bf16-against-fp32 table reads every precision_auto result file, one row per recipe."""

from __future__ import annotations

from benchmarks.report_results import precision_section


def _result(summary: dict, per_class: int, tag: str = "", recipes: list[str] | None = None,
            isa: tuple[str, ...] = ("avx2",)) -> dict:
    return {"per_class": per_class, "epochs": 5, "seeds": [0, 1], "summary": summary, "tag": tag,
            "recipes": recipes or list(summary), "when": "2026-12-02T00:00:00Z",
            "environment": {"cpu": "AMD EPYC", "cores": 2, "isa": list(isa)}}


def _row(fp32: float, bf16: float, speeds: tuple[float, float] = (800.0, 40.0)) -> dict:
    return {"mean_test_accuracy_32": fp32, "mean_test_accuracy_bf16-mixed": bf16,
            "bf16_minus_fp32_points_per_seed": [round(100 * (bf16 - fp32), 2)] * 2,
            "images_per_second_32": speeds[0], "images_per_second_bf16-mixed": speeds[1]}


def test_every_file_gives_its_rows_and_its_command():
    lines = precision_section([_result({"s5-model-s": _row(0.75, 0.74), "fast-fmnist": _row(0.2, 0.1)}, 200),
                               _result({"fast": _row(0.86, 0.87)}, 500, tag="_fast", recipes=["fast"])])
    text = "\n".join(lines)
    rows = [line for line in lines if line.startswith("| ") and "%" in line]
    assert [r.split(" | ")[1] for r in rows] == ["s5-model-s", "fast-fmnist", "fast"]
    assert "| AVX2 only | fast | 500 | 5 | 0, 1 | 86.00 % | 87.00 % | +1.00, +1.00 pt |" in text
    # only the arm that learned nothing is called out, with where it was measured
    assert [line.split(":")[0] for line in lines if "neither precision learned" in line] == [
        "fast-fmnist at 200 per class (AVX2 only)"]
    assert "--recipes fast --tag _fast`" in text and "--per-class 200 --epochs 5 --seeds 0,1`" in text
    assert precision_section([]) == []


def test_the_speed_ratio_is_given_only_where_bf16_is_native():
    emulated = _result({"fast": _row(0.86, 0.87, (800.0, 40.0))}, 500)
    native = _result({"fast": _row(0.86, 0.87, (1_000.0, 1_640.0))}, 500, isa=("avx2", "avx512f", "avx512_bf16"))
    rows = [line for line in precision_section([emulated, native]) if line.startswith("| ") and "%" in line]
    assert "| 800 | 40 (emulated) | - |" in rows[0]
    assert rows[1].startswith("| AVX-512 with native bf16 | fast |")
    assert "| 1,000 | 1,640 | **1.64x** |" in rows[1]
