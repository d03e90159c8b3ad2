"""The HTTP API through FastAPI's TestClient: predictions, the model card, and every way a request is refused."""

from __future__ import annotations

import asyncio
import io
import json
import re
import tempfile

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from imgclf.errors import ImgclfError
from imgclf.inference import Classifier
from imgclf.io import read_json
from imgclf.serve import create_app

LIMIT = 20_000
MAX_FILES = 3


@pytest.fixture(scope="module")
def client(tiny_run):
    with TestClient(create_app(tiny_run, max_upload_bytes=LIMIT, max_files=MAX_FILES)) as c:
        yield c


@pytest.fixture(scope="module")
def png(image_folder) -> bytes:
    return next(iter(sorted(image_folder.glob("cat/*.png")))).read_bytes()


def _files(*items):
    return [("files", item) for item in items]


def _assert_serving(client, png):
    r = client.post("/predict", files=_files(("ok.png", png, "image/png")))
    assert r.status_code == 200, r.text


def test_health_and_model_card(client, tiny_run):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["classes"] == 3 and health["unknown"] == "on"
    assert health["limits"] == {"max_upload_bytes": LIMIT, "max_files": MAX_FILES}
    stored = read_json(tiny_run / "model.json")
    assert stored["hardware"] and stored["versions"]  # kept in the run, not shown to every client
    assert client.get("/model").json() == {k: v for k, v in stored.items() if k not in ("hardware", "versions")}


def test_predict_matches_the_classifier_for_each_file(client, tiny_run, image_folder):
    paths = [sorted(image_folder.glob(f"{c}/*.png"))[3] for c in ("cat", "dog", "fox")]
    expected = Classifier.load(tiny_run).predict([str(p) for p in paths], top_k=3)
    r = client.post("/predict?top_k=3", files=_files(*[(p.name, p.read_bytes(), "image/png") for p in paths]))
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    assert [g["path"] for g in got] == [p.name for p in paths]
    for g, e in zip(got, expected):
        assert g["label"] == e.label and g["probability"] == pytest.approx(e.probability, abs=1e-5)
        assert g["unknown"] == e.unknown and g["score"] == pytest.approx(e.score, rel=1e-4, abs=1e-3)
        assert [t["label"] for t in g["top"]] == [lbl for lbl, _ in e.top]
        assert sum(t["probability"] for t in g["top"]) == pytest.approx(1.0, abs=1e-4)


def test_top_k_selects_and_caps(client, png):
    one = client.post("/predict?top_k=1", files=_files(("a.png", png, "image/png"))).json()["predictions"][0]
    assert len(one["top"]) == 1
    many = client.post("/predict?top_k=50", files=_files(("a.png", png, "image/png"))).json()["predictions"][0]
    assert len(many["top"]) == 3  # only three classes exist


def test_client_file_names_are_only_echoed(client, png, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = client.post("/predict", files=_files(("../../etc/passwd", png, "image/png"), ("C:\\x\\..\\evil.png", png, "image/png")))
    assert r.status_code == 200
    assert [p["path"] for p in r.json()["predictions"]] == ["passwd", "evil.png"]
    assert list(tmp_path.iterdir()) == []


def test_large_uploads_stay_in_memory(tiny_run, monkeypatch):
    # Starlette would spool a part over 1 MB to a temporary file; ours must not touch the disk at all.
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    assert buf.tell() > 1024 * 1024

    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was written to a temporary file")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_disk)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_disk)
    with TestClient(create_app(tiny_run)) as c:
        r = c.post("/predict", files=_files(("big.png", buf.getvalue(), "image/png")))
    assert r.status_code == 200, r.text


def _multipart(parts: list[tuple[str, str | None, str | None, bytes]], boundary: str = "b0undary") -> bytes:
    out = b""
    for name, filename, ctype, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        out += (f"Content-Type: {ctype}\r\n" if ctype else "").encode() + b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


MULTIPART = {"content-type": "multipart/form-data; boundary=b0undary"}


def _chunks(total: int):
    yield b"--b0undary\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n\r\n"
    for _ in range(total // 4096 + 1):
        yield b"\0" * 4096


BAD_REQUESTS = {
    # Requests refused as a whole. name: (request kwargs, expected status, pattern the error message must match)
    "oversized (Content-Length)": (dict(files=_files(("a.png", b"\x89PNG" + b"\0" * LIMIT, "image/png"))), 413,
                                   r"upload must be at most .*Received: \d+ bytes"),
    "oversized (chunked, no length)": (dict(content=_chunks(3 * LIMIT), headers=MULTIPART), 413,
                                       r"upload must be at most .*Received: more than"),
    "wrong request content type": (dict(json={"files": ["a.png"]}), 415,
                                   r"Content-Type must be multipart/form-data.*Received: Content-Type='application/json'"),
    "raw image body": (dict(content=b"\x89PNG....", headers={"content-type": "image/png"}), 415, r"multipart/form-data"),
    "too many files": ("TOO_MANY", 413, rf"at most {MAX_FILES} files"),
    "empty body": (dict(content=b"", headers=MULTIPART), 400,
                   r"request body must be multipart/form-data.*Received: an empty body"),
    "multipart without parts": (dict(content=b"--b0undary--\r\n", headers=MULTIPART), 400, r"at least one image"),
    "wrong field name": (dict(content=_multipart([("image", "a.png", "image/png", b"x")]), headers=MULTIPART), 400,
                         r"form field must be 'files' only.*'image'"),
    # a part of the field is a file whatever it declares: text is read, and refused as no image
    "text instead of a file": (dict(content=_multipart([("files", None, None, b"a.png")]), headers=MULTIPART), 422,
                               r"not a recognised image format"),
    # a hand-written encoder that leaves off --boundary--: Starlette dropped the open part, and the answer had
    # one entry fewer than the files sent
    "body cut before its closing boundary": (
        dict(content=_multipart([("files", "a.png", "image/png", b"x"), ("files", "b.png", "image/png", b"y")])
             [:-len(b"--b0undary--\r\n")], headers=MULTIPART), 400,
        r"request body must be well-formed multipart/form-data, closed by --BOUNDARY--.*ends inside part 2 "
        r"\('b.png'\), before the closing boundary.*that part would be lost"),
    "missing boundary": (dict(content=b"abc", headers={"content-type": "multipart/form-data"}), 400,
                         r"well-formed multipart/form-data.*could not be parsed.*boundary"),
    "bad top_k": ("BAD_TOP_K", 400, r"top_k must be a whole number >= 1 \(above 3, the number of classes, lists them all\)\. Received: top_k='-2'"),
    # a digit to str.isdigit, not to int()
    "superscript top_k": ("SUPERSCRIPT_TOP_K", 400, r"top_k must be a whole number >= 1 .*Received: top_k='²'"),
    # answered without it, the client took the default for what it asked
    "misspelt parameter": ("?topk=2", 400, r"query parameter must be one of \{threshold, top_k, unknown\}\. "
                                           r"Did you mean: top_k\? Received: query parameter='topk'"),
    "parameter given twice": ("?top_k=2&top_k=3", 400, r"top_k must be given once\. Received: '2', '3'"),
    # the first few, then a count: 9,000 repeats made a 36 KB answer
    "parameter given 50 times": ("?" + "&".join(["top_k=9"] * 50), 400,
                                 r"top_k must be given once\. Received: '9', '9', '9' and 47 more$"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_a_clear_json_error_and_the_server_keeps_serving(client, png, case):
    kwargs, status, pattern = BAD_REQUESTS[case]
    url = "/predict"
    if kwargs == "TOO_MANY":
        kwargs = dict(files=_files(*[(f"{i}.png", png, "image/png") for i in range(MAX_FILES + 1)]))
    elif kwargs == "BAD_TOP_K":
        url, kwargs = "/predict?top_k=-2", dict(files=_files(("a.png", png, "image/png")))
    elif kwargs == "SUPERSCRIPT_TOP_K":
        url, kwargs = "/predict?top_k=%C2%B2", dict(files=_files(("a.png", png, "image/png")))
    elif isinstance(kwargs, str) and kwargs.startswith("?"):
        url, kwargs = "/predict" + kwargs, dict(files=_files(("a.png", png, "image/png")))
    r = client.post(url, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and re.search(pattern, body["error"]), body["error"]
    _assert_serving(client, png)


def test_an_image_part_without_a_file_name_is_an_image(client, png):
    """curl -F "files=<photo.png;type=image/png" and httpx's ("", data, "image/png") send no filename=: the part
    was read as a text field ("files (text)"), or refused as over 64 KB for a photo."""
    r = client.post("/predict", content=_multipart([("files", None, "image/png", png),
                                                    ("files", None, "application/octet-stream", png),
                                                    ("files", None, None, png)]),  # requests' (None, data)
                    headers=MULTIPART)
    assert r.status_code == 200, r.text
    assert [p["path"] for p in r.json()["predictions"]] == ["file0", "file1", "file2"]
    assert all(p["label"] and not p["error"] for p in r.json()["predictions"])


def test_an_rfc_5987_file_name_is_the_name_echoed(client, png):
    """filename*=UTF-8''%C3%A9t%C3%A9.png (RFC 6266: it wins over a plain filename= beside it) was dropped, and the
    entry's path came back as file0."""
    body = _multipart([("files", None, "image/png", png), ("files", "fallback.png", "image/png", png),
                       ("files", None, "image/png", png)])
    body = body.replace(b'name="files"\r\n', b'name="files"; filename*=UTF-8\'\'%C3%A9t%C3%A9.png\r\n', 1)
    body = body.replace(b'filename="fallback.png"', b'filename="fallback.png"; filename*=UTF-8\'\'caf%C3%A9.png')
    body = body.replace(b'name="files"\r\n', b'name="files"; filename*=bogus\'\'%FF.png\r\n', 1)
    r = client.post("/predict", content=body, headers=MULTIPART)
    assert r.status_code == 200, r.text
    assert [p["path"] for p in r.json()["predictions"]] == ["\u00e9t\u00e9.png", "caf\u00e9.png", "file2"]


def test_an_image_is_read_by_its_bytes_whatever_content_type_it_declares(client, png):
    """S3 serves objects stored without a type as binary/octet-stream: every such image was refused (422, 'not an
    image: sent as Content-Type ...'), though the service decodes by content."""
    r = client.post("/predict", files=_files(("a.png", png, "binary/octet-stream"), ("b.png", png, "text/plain"),
                                             ("c.png", png, "application/x-png")))
    assert r.status_code == 200, r.text
    assert all(p["label"] and not p["error"] for p in r.json()["predictions"])


def test_one_bad_file_gets_an_error_entry_and_the_others_their_predictions(tiny_run, png):
    # the CLI gives a row per file, unreadable ones included; the service gives an entry per file the same way
    from imgclf.predict_format import format_predictions

    bad = {"notes.png": (b"just some text, not pixels", "image/png", "not a recognised image format"),
           "cut.png": (png[: len(png) // 2], "image/png", "truncated"),
           "a.txt": (b"hello", "text/plain", "not a recognised image format"),
           "empty.png": (b"", "image/png", "empty file (0 bytes)"),
           # known by its bytes, as predict knows an .heic by its name (an upload's name says nothing)
           "IMG_1.jpg": (b"\0\0\0\x18ftypheic\0\0\0\0", "image/jpeg",
                         "HEIC photos are not read (Pillow cannot open them); convert them to JPEG or PNG first")}
    parts = [("good.png", png, "image/png")] + [(name, data, ctype) for name, (data, ctype, _) in bad.items()]
    parts.append(("good2.png", png, "image/png"))
    with TestClient(create_app(tiny_run)) as client:  # the module's client takes 3 files at most
        r = client.post("/predict?top_k=2", files=_files(*parts))
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    assert [g["path"] for g in got] == [name for name, _, _ in parts]
    expected = Classifier.load(tiny_run).predict([io.BytesIO(png)], top_k=2)[0]
    cli_keys = set(json.loads(format_predictions([expected], "json"))[0])
    for entry in got:
        assert set(entry) == cli_keys == {"path", "label", "probability", "best_label", "score", "unknown", "top",
                                          "error"}
    for entry in (got[0], got[-1]):
        assert entry["error"] is None and entry["label"] == expected.label and len(entry["top"]) == 2
        assert entry["probability"] == pytest.approx(expected.probability, abs=1e-5)
    for entry in got[1:-1]:
        assert entry["label"] is None and entry["probability"] is None and entry["top"] == []
        assert entry["score"] is None and entry["unknown"] is None
        assert bad[entry["path"]][2] in entry["error"], entry


def test_a_batch_of_only_bad_files_is_a_422_with_each_reason_and_no_forward_pass(client, png):
    """Every file failed: answered 200, a client that checks the status (curl -f, raise_for_status) took the
    request for a success, where `imgclf predict` exits 2."""
    before = client.get("/health").json()["forward_passes"]
    r = client.post("/predict", files=_files(("x.png", b"not pixels", "image/png"), ("y.png", b"", "image/png")))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["status"] == 422
    assert body["error"].startswith("files must be at least one image the server can read. Received: 2 file(s), "
                                    "none usable: 'x.png': not a recognised image format; 1 more"), body["error"]
    assert body["predictions"] == [{"path": "x.png", "label": None, "probability": None, "best_label": None,
                                    "score": None, "unknown": None, "top": [],
                                    "error": "not a recognised image format"},
                                   {"path": "y.png", "label": None, "probability": None, "best_label": None,
                                    "score": None, "unknown": None, "top": [], "error": "empty file (0 bytes)"}]
    assert client.get("/health").json()["forward_passes"] == before
    # one usable file is enough for a 200: the others keep their reasons
    mixed = client.post("/predict", files=_files(("x.png", b"not pixels", "image/png"), ("a.png", png, "image/png")))
    assert mixed.status_code == 200 and [e["error"] is None for e in mixed.json()["predictions"]] == [False, True]


def test_a_decompression_bomb_gets_its_error_entry_and_no_warning_in_the_log(tiny_run):
    import warnings

    from torture import _bomb_png

    with warnings.catch_warnings(record=True) as seen, TestClient(create_app(tiny_run)) as client:
        # the filters as the server sets them in its process (pytest puts each test's own back after it)
        r = client.post("/predict", files=_files(("big.png", _bomb_png(10_000, 10_000), "image/png")))
    assert r.status_code == 422, r.text  # its only file refused
    assert r.json()["predictions"][0]["error"].startswith("decompression bomb refused: 100,000,000 pixels")
    assert not [w for w in seen if "DecompressionBomb" in w.category.__name__], [str(w.message) for w in seen]


def test_postscript_is_never_handed_to_ghostscript(client, tmp_path, monkeypatch, tiny_run):
    """Pillow decodes EPS by running Ghostscript on the file's own PostScript: an upload named photo.jpg made the
    server run it (and the reply quoted gs's command line and a server temp path); a file named cat.png did the
    same under predict and training. A gs that leaves a mark shows whether it ran."""
    import os
    import stat

    from imgclf.data.decode import DecodeError, decode_image

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "gs-ran"
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\nexit 1\n")
    gs.chmod(gs.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 0, 0)).save(buf, format="EPS")
    eps = buf.getvalue()
    r = client.post("/predict", files=_files(("photo.jpg", eps, "image/jpeg")))
    assert r.status_code == 422, r.text
    error = r.json()["predictions"][0]["error"]
    assert error == "not a recognised image format" and "/tmp" not in r.text, r.text
    (tmp_path / "cat.png").write_bytes(eps)
    with pytest.raises(DecodeError, match="not a recognised image format"):
        decode_image(str(tmp_path / "cat.png"), 16, "rgb")
    assert not marker.exists(), marker.read_text()


def test_health_and_the_pages_answer_head_requests(client):
    assert client.head("/health").status_code == 200  # was 405
    assert client.head("/").status_code == 200 and client.head("/app.js").status_code == 200  # curl -I
    assert client.head("/model").status_code == 405  # the API's routes answer what they document


def test_numbers_too_long_for_int_are_client_errors(client, png):
    """int() refuses a string of over 4,300 digits: a top_k or Content-Length that long was a 500."""
    many = client.post("/predict?top_k=" + "9" * 5000, files=_files(("a.png", png, "image/png")))
    assert many.status_code == 200 and len(many.json()["predictions"][0]["top"]) == 3, many.text
    zero = client.post("/predict?top_k=" + "0" * 5000, files=_files(("a.png", png, "image/png")))
    assert zero.status_code == 400 and "top_k must be a whole number >= 1" in zero.json()["error"]
    assert client.post("/predict?top_k=" + "0" * 5000 + "2", files=_files(("a.png", png, "image/png"))) \
        .status_code == 200
    from imgclf.serve.uploads import ApiError, read_uploads
    from starlette.requests import Request

    scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"9" * 5000)]}
    with pytest.raises(ApiError) as refused:
        asyncio.run(read_uploads(Request(scope), LIMIT, MAX_FILES))
    assert refused.value.status == 413


def test_a_body_that_stops_arriving_is_answered_408(monkeypatch):
    """uvicorn times out no body: an upload that stalled held its connection and what it had sent for ever."""
    from imgclf.serve import uploads
    from starlette.requests import Request

    monkeypatch.setattr(uploads, "BODY_SECONDS", 0.2)
    sent = [{"type": "http.request", "body": b"--b0undary\r\nContent-Disposition: form-data; name=\"files\"; "
                                             b"filename=\"a.png\"\r\n\r\n\x89PNG", "more_body": True}]

    async def receive():
        if sent:
            return sent.pop()
        await asyncio.sleep(3600)  # the client sends nothing more

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", MULTIPART["content-type"].encode())]}
    with pytest.raises(uploads.ApiError) as refused:
        asyncio.run(uploads.read_uploads(Request(scope, receive), LIMIT, MAX_FILES))
    assert refused.value.status == 408 and "not complete after 0.2 s" in refused.value.message


def test_the_server_caps_its_connections(tiny_run, monkeypatch):
    import uvicorn

    from imgclf.serve import app as serve_app

    given = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: given.update(kwargs, app=app))
    serve_app.serve(tiny_run, port=0)
    assert given["limit_concurrency"] == serve_app.MAX_CONNECTIONS
    # a stalled upload held Ctrl-C and SIGTERM for up to BODY_SECONDS, past what docker stop waits
    assert given["timeout_graceful_shutdown"] == serve_app.GRACEFUL_SECONDS


def test_serve_says_what_it_serves_and_where_before_uvicorns_lines(tiny_run, monkeypatch, capsys):
    """uvicorn says where it listens, not what: an int8 export, unknown off, the forward threads."""
    import uvicorn

    from imgclf.serve import app as serve_app
    from imgclf.serve.banner import startup_line

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(app=app))
    serve_app.serve(tiny_run, port=8123, threads=2, unknown=False, precision="32")
    line = capsys.readouterr().out.strip()
    health = TestClient(served["app"]).get("/health").json()
    assert line == (f"serving {tiny_run}: {health['model']}, {health['classes']} classes, torch at 32 on 2 forward "
                    "threads, unknown off; upload page at http://127.0.0.1:8123/ (API: POST /predict, GET /model, "
                    "/health, /openapi.json)")
    summary = {**health, "precision": "int8", "backend": "onnx"}
    assert "upload page at http://127.0.0.1:80/ here, and at this machine's IPv4 addresses" in \
        startup_line("r", summary, "0.0.0.0", 80, 1)
    # asyncio listens on IPv6 alone for ::, where a 127.0.0.1 link was refused
    assert "upload page at http://[::1]:80/ here, and at this machine's IPv6 addresses" in \
        startup_line("r", summary, "::", 80, 1)
    assert "onnx at int8 on 1 forward thread," in startup_line("r", summary, "::1", 80, 1)
    assert "at http://[::1]:80/" in startup_line("r", summary, "::1", 80, 1)
    assert "upload page on the port uvicorn prints below" in startup_line("r", summary, "127.0.0.1", 0, 1)
    assert ", no unknown detector;" in startup_line("r", {**summary, "unknown": "none in this model"}, "h", 1, 1)


def test_requests_in_progress_are_capped_with_a_json_503_and_counted_down_after_each(client, png, monkeypatch):
    """uvicorn's cap counted idle keep-alive connections and answered plain text; the app counts its own
    requests in progress: each one, answered or refused, gives its place back."""
    from imgclf.serve import app as serve_app

    monkeypatch.setattr(serve_app, "MAX_IN_FLIGHT", 1)
    for files in (_files(("a.png", png, "image/png")), _files(("a.png", b"not an image", "image/png")), []):
        assert client.post("/predict", files=files).status_code in (200, 400, 422)
    assert client.post("/predict", files=_files(("a.png", png, "image/png"))).status_code == 200
    monkeypatch.setattr(serve_app, "MAX_IN_FLIGHT", 0)  # as if every place were taken
    r = client.post("/predict", files=_files(("a.png", png, "image/png")))
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"].startswith("requests must be at most 0 /predict requests in progress at once")


def test_unknown_routes_and_methods_are_json_errors(client):
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"] == "Not Found"
    r = client.get("/predict")
    assert r.status_code == 405 and "error" in r.json()


def test_page_and_assets_are_self_contained(client):
    for route, media in (("/", "text/html"), ("/app.js", "text/javascript"), ("/style.css", "text/css")):
        r = client.get(route)
        assert r.status_code == 200 and r.headers["content-type"].startswith(media)
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert not re.search(r"(https?:)?//[a-z0-9]", r.text.replace("://${", "")), f"external reference in {route}"
    page = client.get("/").text
    assert 'type="file"' in page and 'src="app.js"' in page
    # no page that needs the internet: Swagger UI's /docs loaded its script from a CDN (blank offline)
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").json()["paths"]["/predict"]


def test_the_openapi_schema_describes_what_predict_takes_and_answers(client, png):
    """A client generated from /openapi.json needs the multipart body, the parameters and the answer's shape;
    the body was missing (the route reads it itself) and the answer was a bare object."""
    from jsonschema import Draft202012Validator

    spec = client.get("/openapi.json").json()
    route = spec["paths"]["/predict"]["post"]
    body = route["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["files"] and body["properties"]["files"]["items"]["format"] == "binary"
    assert {p["name"]: bool(p["description"]) for p in route["parameters"]} == \
        {"top_k": True, "unknown": True, "threshold": True}
    # typed as they are read (each was "a string or null", and generated clients typed top_k a str)
    types = {p["name"]: p["schema"] for p in route["parameters"]}
    assert types["top_k"]["type"] == "integer" and types["top_k"]["minimum"] == 1
    from imgclf.config_text import SWITCH_WORDS

    assert sorted(types["unknown"]["enum"]) == sorted(SWITCH_WORDS)  # every word the route takes, and no other
    for word in types["unknown"]["enum"]:
        assert client.post(f"/predict?unknown={word}", files=_files(("a.png", png, "image/png"))).status_code == 200
    assert (types["threshold"]["type"], types["threshold"]["exclusiveMaximum"]) == ("number", 1)

    def validator(response: str) -> Draft202012Validator:
        schema = route["responses"][response]["content"]["application/json"]["schema"]
        return Draft202012Validator({**schema, "components": spec["components"]})

    answer = client.post("/predict?top_k=2", files=_files(("a.png", png, "image/png"), ("b.png", b"x", "image/png")))
    validator("200").validate(answer.json())
    assert [e["error"] is None for e in answer.json()["predictions"]] == [True, False]
    refused = client.post("/predict?top_k=0", files=_files(("a.png", png, "image/png")))
    validator("400").validate(refused.json())
    none_usable = client.post("/predict", files=_files(("b.png", b"x", "image/png")))
    assert none_usable.status_code == 422
    validator("422").validate(none_usable.json())
    assert not validator("422").is_valid({"error": "e", "status": 422})  # the entries are promised too
    # FastAPI's own 422 body is never sent (the app answers 400), so it is not promised
    assert "HTTPValidationError" not in spec.get("components", {}).get("schemas")
    # one operation per route for client generators (GET and HEAD /health shared an id)
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids)) and "head" not in spec["paths"]["/health"]
    assert not validator("200").is_valid({"model": "m", "predictions": [{"path": "a.png"}]})


def test_bad_settings_are_refused_before_serving(tiny_run, tmp_path):
    with pytest.raises(ImgclfError, match="max_files must be >= 1"):
        create_app(tiny_run, max_files=0)
    with pytest.raises(ImgclfError, match="backend must be one of"):
        create_app(tiny_run, backend="tensorflow")
    with pytest.raises(ImgclfError, match="model.json"):
        create_app(tmp_path)


def test_one_app_serves_through_successive_event_loops(tiny_run, png):
    # uvicorn runs one loop, but an app may be driven by several in turn: TestClient without `with` starts
    # a loop per request, and a lifespan may end and start again. The batcher must follow.
    app = create_app(tiny_run)
    plain = TestClient(app)
    for _ in range(2):
        assert plain.post("/predict", files=_files(("a.png", png, "image/png"))).status_code == 200
    for _ in range(2):
        with TestClient(app) as c:
            assert c.post("/predict", files=_files(("a.png", png, "image/png"))).status_code == 200


def test_a_large_photo_takes_the_gated_decode_path(client, tiny_run):
    from imgclf.serve import app as serve_app

    img = Image.new("RGB", (2100, 2000), (200, 30, 30))  # 4.2 Mpixel, a few KB as PNG
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    assert serve_app._declared_pixels(buf.getvalue()) > serve_app.LARGE_UPLOAD_PIXELS
    r = client.post("/predict", files=_files(("photo.png", buf.getvalue(), "image/png")))
    assert r.status_code == 200, r.text
    assert serve_app._declared_pixels(b"not an image") == 0


def test_small_images_decode_on_the_event_loop_and_larger_ones_in_the_pool(client, monkeypatch):
    """A thread hop per request cost the loop more CPU than decoding a 32x32 PNG: small uploads skip it; larger
    ones still decode off the loop, so they do not hold up other requests."""
    from imgclf.serve import app as serve_app

    hops = []
    real = serve_app.run_in_threadpool

    async def counting(func, *args):
        hops.append(func.__name__)
        return await real(func, *args)

    monkeypatch.setattr(serve_app, "run_in_threadpool", counting)
    sizes = {"small": (32, 32), "at the limit": (256, 256), "larger": (300, 300)}
    for name, size in sizes.items():
        buf = io.BytesIO()
        Image.new("RGB", size, (30, 200, 30)).save(buf, format="PNG")
        r = client.post("/predict", files=_files((f"{name}.png", buf.getvalue(), "image/png")))
        assert r.status_code == 200 and r.json()["predictions"][0]["error"] is None, r.text
    assert hops == ["decode_uploads"], "only the 300x300 image should have gone to the thread pool"
    assert 256 * 256 <= serve_app.INLINE_DECODE_PIXELS < 300 * 300
    # a small picture in a large file (ancillary chunks before its pixels, which reading its header parses) is
    # looked at off the loop: 800,000 such chunks held the loop, and every client, for 3 s
    hops.clear()
    monkeypatch.setattr(serve_app, "INLINE_DECODE_BYTES", 4_000)  # under this client's upload limit
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=_padding_chunks(serve_app.INLINE_DECODE_BYTES))
    r = client.post("/predict", files=_files(("padded.png", buf.getvalue(), "image/png")))
    assert r.status_code == 200 and r.json()["predictions"][0]["error"] is None, r.text
    assert hops == ["_declared_total", "decode_uploads"]


def _padding_chunks(total: int):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for i in range(total // 1000 + 1):
        info.add_text(f"pad{i}", "x" * 1000)
    return info
