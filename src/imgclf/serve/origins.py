"""Cross-origin access (`imgclf serve --allow-origin`): which web pages on other origins may call the API from a
browser. None by default: a page elsewhere can still post to the server (a form), but its script cannot read the
answer, so only the upload page served at / reads predictions in a browser."""

from __future__ import annotations

import re
from typing import Iterable

from ..errors import invalid

# scheme://host[:port], as a browser sends it in the Origin header: no path, no trailing slash
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s?#]+$", re.IGNORECASE)


def check_origins(origins: Iterable[str]) -> list[str]:
    """The origins as a browser sends them, each `*` (any page) or scheme://host[:port]: scheme and host in lower
    case, without the scheme's default port (Starlette compares the Origin header as a string: HTTP://LocalHost:3000
    and http://localhost:80 never matched); refused one by one in the house style."""
    checked = []
    for origin in [origins] if isinstance(origins, str) else origins:  # one origin given as a string (Python)
        origin = str(origin)
        if origin != "*" and not _ORIGIN.match(origin):
            slash = origin.rstrip("/") if re.match(r"^[a-z][a-z0-9+.-]*://[^/\s?#]+/+$", origin, re.I) else None
            raise invalid("allow_origin", origin, "* or an origin as a browser sends it: scheme://host[:port], "
                          "such as http://localhost:3000", note="a path or trailing slash never matches"
                          if slash or "://" in origin else None, hint=f"Pass {slash}" if slash else None)
        checked.append(origin if origin == "*" else _as_sent(origin))
    return checked


def _as_sent(origin: str) -> str:
    scheme, _, rest = origin.partition("://")
    scheme, rest = scheme.lower(), rest.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and rest.endswith(default):
        rest = rest[: -len(default)]
    return f"{scheme}://{rest}"


def add_cors(app, origins: list[str]) -> None:
    """Let scripts on `origins` call every route; the 503's Retry-After readable by them too. A preflight refused
    (another origin, method or header) is answered as every other error is, JSON {error, status}: Starlette's
    middleware answers it in plain text, which the API's documented 4XX body is not."""
    if not origins:
        return
    from starlette.middleware.cors import CORSMiddleware
    from starlette.responses import JSONResponse

    class JsonRefusals(CORSMiddleware):
        def preflight_response(self, request_headers):
            response = super().preflight_response(request_headers)
            if response.status_code < 400:
                return response
            kept = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
            reason = bytes(response.body).decode("utf-8", "replace")  # "Disallowed CORS origin, method"
            allowed = f" (origins allowed: {', '.join(origins)})" if "origin" in reason else ""
            return JSONResponse({"error": reason + allowed, "status": response.status_code},
                                status_code=response.status_code, headers=kept)

    app.add_middleware(JsonRefusals, allow_origins=origins, allow_methods=["GET", "HEAD", "POST"],
                       allow_headers=["Content-Type"], expose_headers=["Retry-After"], max_age=600)
