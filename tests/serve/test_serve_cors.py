"""--allow-origin: scripts on the named web origins may call the API from a browser; no other origin's may, and
without the option none may."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from imgclf.errors import ImgclfError
from imgclf.serve import create_app

APP = "http://localhost:3000"


@pytest.fixture(scope="module")
def png(image_folder) -> bytes:
    return next(iter(sorted(image_folder.glob("cat/*.png")))).read_bytes()


def _post(client, png, origin):
    return client.post("/predict", files=[("files", ("a.png", png, "image/png"))], headers={"Origin": origin})


def test_an_allowed_origin_may_read_the_answers_and_others_may_not(tiny_run, png):
    with TestClient(create_app(tiny_run, allow_origins=[APP])) as client:
        r = _post(client, png, APP)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == APP
        assert "retry-after" in r.headers["access-control-expose-headers"].lower()
        # the preflight a browser sends before a request it may not send plainly
        pre = client.options("/predict", headers={"Origin": APP, "Access-Control-Request-Method": "POST",
                                                  "Access-Control-Request-Headers": "content-type"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == APP
        assert "POST" in pre.headers["access-control-allow-methods"]
        assert client.get("/model", headers={"Origin": APP}).headers["access-control-allow-origin"] == APP
        # another page: answered (the server cannot stop a post), but without the header its script is refused
        other = _post(client, png, "http://evil.example")
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
        refused = client.options("/predict", headers={"Origin": "http://evil.example",
                                                      "Access-Control-Request-Method": "POST"})
        # as every other error: JSON {error, status} (Starlette's middleware answered in plain text)
        assert refused.status_code == 400 and refused.headers["content-type"] == "application/json"
        assert refused.json() == {"error": f"Disallowed CORS origin (origins allowed: {APP})", "status": 400}


def test_an_origin_is_kept_as_a_browser_sends_it(tiny_run, png):
    """Starlette compares the Origin header as a string: HTTP://LocalHost:3000 and http://localhost:80 were accepted
    and then never matched what a browser sends."""
    with TestClient(create_app(tiny_run, allow_origins=["HTTP://LocalHost:3000", "http://localhost:80",
                                                        "https://app.example:443"])) as client:
        for origin in (APP, "http://localhost", "https://app.example"):
            assert _post(client, png, origin).headers["access-control-allow-origin"] == origin


def test_without_the_option_no_origin_is_allowed_and_star_allows_any(tiny_run, png):
    with TestClient(create_app(tiny_run)) as client:
        assert "access-control-allow-origin" not in _post(client, png, APP).headers
    with TestClient(create_app(tiny_run, allow_origins=["*"])) as client:
        assert _post(client, png, "https://anything.example").headers["access-control-allow-origin"] == "*"
    with TestClient(create_app(tiny_run, allow_origins=APP)) as client:  # one, as a string: not its characters
        assert _post(client, png, APP).headers["access-control-allow-origin"] == APP


@pytest.mark.parametrize("origin, message", [
    ("http://localhost:3000/", r"allow_origin must be \* or an origin as a browser sends it: scheme://host\[:port\].*"
                               r"'http://localhost:3000/'.*Pass http://localhost:3000"),
    ("http://localhost:3000/app", r"allow_origin must be .*'http://localhost:3000/app'.*a path or trailing slash"),
    ("localhost:3000", r"allow_origin must be .*'localhost:3000'"),
])
def test_an_origin_a_browser_never_sends_is_refused_before_the_model_loads(tmp_path, origin, message):
    with pytest.raises(ImgclfError, match=message):
        create_app(tmp_path, allow_origins=[origin])  # no run there: the origin is refused first
