"""What GET /model shows of a run's card on a network: not where the run was trained (the machine's CPU, platform
and library versions)."""

from __future__ import annotations

from typing import Any

PRIVATE_KEYS = ("hardware", "versions")


def public_card(card: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in card.items() if key not in PRIVATE_KEYS}
