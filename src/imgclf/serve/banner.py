"""The line `imgclf serve` prints before uvicorn's: what it serves, how, and where its upload page is."""

from __future__ import annotations

import os
from typing import Any

from ..io import terminal_safe

UNKNOWN_WORDS = {"on": "unknown on", "off": "unknown off"}  # else /health's "none in this model" (multi-label)


def startup_line(run_dir: str | os.PathLike, summary: dict[str, Any], host: str, port: int, threads: int) -> str:
    """summary: what GET /health says is loaded (`app.state.summary`)."""
    if not port:  # 0: uvicorn picks a free one and prints it
        page = "on the port uvicorn prints below"
    elif host == "0.0.0.0":
        page = f"at http://127.0.0.1:{port}/ here, and at this machine's IPv4 addresses on the network"
    elif host == "::":  # asyncio listens on IPv6 alone there (IPV6_V6ONLY): 127.0.0.1 refused connections
        page = f"at http://[::1]:{port}/ here, and at this machine's IPv6 addresses on the network"
    else:
        page = f"at http://{f'[{host}]' if ':' in host else host}:{port}/"
    return (f"serving {terminal_safe(str(run_dir))}: {summary['model']}, {summary['classes']} classes, "
            f"{summary['backend']} at {summary['precision']} on {threads} forward thread{'s' * (threads != 1)}, "
            f"{UNKNOWN_WORDS.get(summary['unknown'], 'no unknown detector')}; upload page {page} "
            "(API: POST /predict, GET /model, /health, /openapi.json)")
