"""What GET /model shows of a run's card on a network: not where the run was trained (the machine's CPU, platform
and library versions) nor a folder of the machine that exported it (an int8 export's calibration images)."""

from __future__ import annotations

from typing import Any

PRIVATE_KEYS = ("hardware", "versions")


def public_card(card: dict[str, Any]) -> dict[str, Any]:
    shown = {key: value for key, value in card.items() if key not in PRIVATE_KEYS}
    check = (card.get("export") or {}).get("quantization_check")
    if check and check.get("images"):
        shown["export"] = {**card["export"], "quantization_check": {**check, "images": "a folder (not shown)"}}
    return shown
