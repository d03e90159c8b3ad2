"""What GET /model shows of a run's card on a network: not where the run was trained (the machine's CPU, platform
and library versions)."""

from __future__ import annotations

from typing import Any

PRIVATE_KEYS = ("hardware", "versions")
PRIVATE_EXPORT_KEYS = ("torch",)  # an export's card: the version it was exported with


def public_card(card: dict[str, Any]) -> dict[str, Any]:
    shown = {key: value for key, value in card.items() if key not in PRIVATE_KEYS}
    if isinstance(shown.get("export"), dict):
        shown["export"] = {key: value for key, value in shown["export"].items() if key not in PRIVATE_EXPORT_KEYS}
    return shown
