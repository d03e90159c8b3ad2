"""The HTTP service of a run: `create_app(run_dir)` -> a FastAPI app; `serve(...)` runs it with uvicorn.

Routes: GET / (upload page), GET /model (the model card), GET /health, POST /predict (multipart, field `files`,
`?top_k=`; multi-label models also `?threshold=`, one decision threshold for every label). A request refused as a
whole (no file, too many, too large, not multipart) is a JSON body `{"error": message, ...}` with a 4xx status.
Otherwise every file gets an entry in `predictions`, in upload order, with the keys of `imgclf predict --format json`:
`path` (the client's file name), `label` ("unknown" below the card's threshold, unless the server runs with unknown
off or the request asks `?unknown=off`), `probability` and `best_label` (the closest known class), `score` (higher:
more like the training images), `unknown`, `top` (calibrated probabilities), and `error` (null, or why that file
could not be used: one bad file costs the others nothing). Preprocessing and labels come from the card through
`imgclf.inference.Classifier`; the only files read are the run's own and the page shipped in this package.
"""

from __future__ import annotations

import asyncio
import io
import os
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from fastapi import FastAPI, Request
from PIL import Image
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data.decode import DecodeError, readable_formats
from ..topk import top_k as top_classes
from ..backends import load_classifier
from ..errors import Described, check_switch, invalid, invalid_message
from ..notices import silence_pillow_warnings
from ..inference import Classifier, PixelResults
from ..prediction import Prediction, multilabel_prediction
from ..ood import UNKNOWN_LABEL
from ..predict_format import as_json
from .banner import startup_line
from .batcher import MicroBatcher
from .origins import add_cors, check_origins
from .public import public_card
from .schema import PREDICT_RESPONSES, PredictResponse, predict_openapi
from .shutdown import ShutdownAnswer, answered
from .uploads import ApiError, Upload, read_uploads

DEFAULT_MAX_UPLOAD_BYTES = 10_000_000
DEFAULT_MAX_FILES = 32
LARGE_UPLOAD_PIXELS = 4_000_000  # about a 4-megapixel photo: 12 MB once decoded
# Up to this many pixels in a request (a 256x256 image, well under a millisecond to decode and resize) decode
# on the event loop: a hop to the thread pool and back cost the loop more CPU than such a decode (profiled with
# 32x32 PNGs under 16 clients), and the loop is what every request waits for.
INLINE_DECODE_PIXELS = 65_536
# ... and only bodies this small are even looked at there: reading a header can mean parsing every chunk before it
# (a 9.6 MB PNG of 800,000 empty chunks held the loop, and every client, for 3 s)
INLINE_DECODE_BYTES = 65_536
# /predict requests in progress at once, each of which may hold an upload of max_upload_bytes: a JSON 503 with
# Retry-After beyond. Counted by the app: uvicorn's own limit counts open connections, idle keep-alive ones
# included, and answered a plain-text 503 to 1 request in 5 of 120 clients that each sent one every 0.3 s.
MAX_IN_FLIGHT = 100
MAX_CONNECTIONS = 1000  # open connections (uvicorn refuses beyond): file descriptors, not uploads
# Ctrl-C or SIGTERM waits this long for requests in progress (then each gets a JSON 503: shutdown.py): an upload
# that stopped arriving held the server for up to BODY_SECONDS, past what docker stop and systemd wait to kill it
GRACEFUL_SECONDS = 10
# The page loads nothing from elsewhere; this header makes the browser enforce that.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8"),
          "/favicon.svg": ("favicon.svg", "image/svg+xml")}


def default_threads() -> int:
    """Half the cores for the forward pass: the other half parse HTTP and decode images in the same process.

    Measured on a busy 2-core machine: one 16x16 image through a small CNN took 64 ms with torch's default
    2 threads (its OpenMP workers wait on cores the event loop needs) and 1 ms with 1 thread.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, cores // 2)


def create_app(run_dir: str | os.PathLike, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               max_files: int = DEFAULT_MAX_FILES, backend: str = "torch", max_batch: int = 64,
               max_wait_ms: float = 0.0, threads: int | None = None, unknown: bool = True,
               precision: str = "auto", allow_origins: Sequence[str] = ()) -> FastAPI:
    """A FastAPI app serving the run in `run_dir` (loaded now, so a bad run fails before serving starts).

    max_batch / max_wait_ms: how concurrent requests are batched (see `MicroBatcher`). threads: threads for
    the forward pass; None leaves torch and onnxruntime at their defaults (`serve()` passes a value).
    unknown: label images below the card's threshold "unknown" (a request's ?unknown=on|off overrides it).
    precision: the torch backend's (`load_classifier`); /health says what it resolved to.
    allow_origins: web origins whose scripts may call the API (`*`: any); none by default.
    """
    silence_pillow_warnings()  # the serving process is imgclf's (a bomb's warning, one per upload, filled the log)
    for name, value in (("max_upload_bytes", max_upload_bytes), ("max_files", max_files), ("threads", threads),
                        ("max_batch", max_batch)):
        if value is not None and value < 1:
            raise invalid(name, value, ">= 1")
    origins = check_origins(allow_origins)
    clf = load_classifier(run_dir, backend, threads, precision)
    default_unknown = check_switch("unknown", unknown)
    card, classes = clf.card.model_dump(mode="json"), clf.classes
    cutoffs = clf._label_thresholds(None)  # multi-label cards: each label's threshold; None otherwise
    pages = {route: (resources.files(__package__).joinpath("static", name).read_bytes(), media)
             for route, (name, media) in STATIC.items()}
    # A decoded photo can take hundreds of MB before its resize: large ones decode a few at a time, not 40 (Starlette's
    # pool) at once; small ones skip the gate, which sent them to the batcher one by one (mean batch 5.7 -> 3.1).
    decode_slots = _PerLoop(lambda: asyncio.Semaphore(max(2, default_threads() * 2)))
    batcher: MicroBatcher[PixelResults] = MicroBatcher(lambda jobs: predict_together(clf, jobs), max_batch=max_batch,
                                                     max_wait_s=max_wait_ms / 1000.0, size=len)
    running: set[asyncio.Task] = set()  # requests in progress: answered at shutdown (shutdown.py)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        await answered(running)
        await batcher.close()

    # no /docs: its Swagger UI loads from a CDN (blank offline); /openapi.json is served, the upload page at /
    app = FastAPI(title=f"imgclf: {Path(run_dir).name}", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(ShutdownAnswer, running=running)  # first: CORS, outside it, heads its 503 too
    add_cors(app, origins)
    app.state.classifier, app.state.batcher = clf, batcher
    # what /health says is loaded, and `serve` prints at startup
    app.state.summary = summary = {
        "model": card["architecture"], "classes": len(classes), "backend": backend, "precision": clf.precision,
        # a model without a detector (multi-label runs) flags nothing, whatever ?unknown says
        "unknown": "none in this model" if card.get("unknown") is None else "on" if default_unknown else "off"}

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        retry = exc.details.get("retry_after_s")
        return JSONResponse({"error": exc.message, "status": exc.status, **exc.details}, status_code=exc.status,
                            headers={"Retry-After": str(retry)} if retry is not None else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail), "status": exc.status_code}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        message = invalid_message("request", Described(problems), "one this API accepts (see /openapi.json)")
        return JSONResponse({"error": message, "status": 400}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Starlette still re-raises it afterwards, so uvicorn logs the traceback; the client gets JSON.
        return JSONResponse({"error": f"internal error: {type(exc).__name__}", "status": 500}, status_code=500)

    def page(route: str):
        body, media = pages[route]

        async def handler() -> Response:
            return Response(body, media_type=media, headers=PAGE_HEADERS)

        return handler

    for route in STATIC:  # HEAD too, as for any page (curl -I)
        app.api_route(route, methods=["GET", "HEAD"], include_in_schema=False)(page(route))

    @app.head("/health", include_in_schema=False)  # what some load balancers' checks send
    async def health_head() -> Response:
        return Response(status_code=200)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and what is loaded; `mean_batch` shows how well concurrent requests were batched."""
        return {"status": "ok", **summary, "forward_passes": batcher.batches, "images": batcher.images,
                "mean_batch": round(batcher.images / batcher.batches, 3) if batcher.batches else None,
                "limits": {"max_upload_bytes": max_upload_bytes, "max_files": max_files}}

    shown_card = public_card(card)

    @app.get("/model")
    async def model() -> dict[str, Any]:
        """The model card (model.json): architecture, classes, input size, preprocessing, metrics; not where it
        was trained (hardware, library versions)."""
        return shown_card

    # response_model=None: the answer is built as plain JSON-ready dicts on the hot path; `responses` documents it
    @app.post("/predict", response_model=None, openapi_extra=predict_openapi(),
              responses={200: {"model": PredictResponse, "description": "One entry per file."}, **PREDICT_RESPONSES})
    async def predict(request: Request) -> Response:
        """Images in the multipart field `files` (one or more) -> top-k labels with probabilities, in order."""
        query = _checked_query(request)
        k = _parse_top_k(query.get("top_k"), len(classes))
        flag_unknown = _parse_on_off("unknown", query.get("unknown"), default_unknown)
        threshold = query.get("threshold")
        labels_at = cutoffs if threshold is None else _parse_threshold(threshold, classes, cutoffs)
        if in_flight[0] >= MAX_IN_FLIGHT:
            raise ApiError(503, invalid_message("requests", Described(f"{MAX_IN_FLIGHT} in progress already"),
                                                f"at most {MAX_IN_FLIGHT} /predict requests in progress at once",
                                                hint="Retry in a moment (Retry-After)"), retry_after_s=1)
        in_flight[0] += 1
        try:
            return await answer(request, k, flag_unknown, labels_at)
        finally:
            in_flight[0] -= 1

    in_flight = [0]  # /predict requests being read or answered (one event loop: no lock needed)

    async def answer(request: Request, k: int, flag_unknown: bool, labels_at: Any) -> Response:
        uploads = await read_uploads(request, max_upload_bytes, max_files)
        # Larger images decode in Starlette's thread pool, so photos decode on several cores at once.
        small = sum(len(up.data) for up in uploads) <= INLINE_DECODE_BYTES
        declared = (_declared_total(uploads) if small else await run_in_threadpool(_declared_total, uploads))
        if small and declared <= INLINE_DECODE_PIXELS:
            decoded = decode_uploads(clf, uploads)
        elif declared > LARGE_UPLOAD_PIXELS or declared == 0:  # 0: no header read, so no size known
            async with decode_slots.get():
                decoded = await run_in_threadpool(decode_uploads, clf, uploads)
        else:
            decoded = await run_in_threadpool(decode_uploads, clf, uploads)
        usable = [pixels for pixels in decoded if not isinstance(pixels, str)]
        out = await batcher(np.stack(usable)) if usable else None
        results, j = [], 0
        for up, pixels in zip(uploads, decoded):
            if isinstance(pixels, str):
                results.append(as_json(Prediction(up.name, None, None, [], pixels, unknown=None,
                                                             multilabel=labels_at is not None)))
                continue
            top = top_classes(out.probabilities[j], classes, k)
            if labels_at is not None:
                results.append(as_json(multilabel_prediction(up.name, out.probabilities[j], classes, top, labels_at,
                                                             float(out.scores[j]))))
                j += 1
                continue
            flagged = flag_unknown and bool(out.unknown[j])
            results.append(as_json(Prediction(up.name, UNKNOWN_LABEL if flagged else top[0][0], top[0][1], top,
                                              score=float(out.scores[j]), unknown=flagged, best_label=top[0][0])))
            j += 1
        body = {"model": card["architecture"], "predictions": results}
        if not usable:  # nothing classified: a client that checks the status (curl -f, raise_for_status) must see it
            return JSONResponse({"error": _none_usable(results), "status": 422, **body}, status_code=422)
        # a Response, not the dict: FastAPI walked a returned dict through jsonable_encoder (with its parameter
        # solving, about 90 us of CPU a request) to build what json.dumps takes as it is
        return JSONResponse(body)

    return app


class _PerLoop:
    """One asyncio object per event loop: the app may be driven by several loops in turn (TestClient does)."""

    def __init__(self, make: Any):
        self.make = make
        self.loop: asyncio.AbstractEventLoop | None = None
        self.value: Any = None

    def get(self) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:
            self.loop, self.value = loop, self.make()
        return self.value


def _none_usable(results: list[dict[str, Any]]) -> str:
    """The 422's one line: no file of the request could be used; each file's own reason is in its entry."""
    first = results[0]
    more = f"; {len(results) - 1} more, each with its reason in predictions" if len(results) > 1 else ""
    return invalid_message("files", Described(f"{len(results)} file(s), none usable: {first['path']!r}: "
                                              f"{first['error']}{more}"), "at least one image the server can read")


def _declared_total(uploads: list[Upload]) -> int:
    return sum(_declared_pixels(up.data) for up in uploads)


def _declared_pixels(data: bytes) -> int:
    """Width x height from the header alone (nothing decoded: decode_uploads refuses a bomb); 0 if unreadable."""
    try:
        with Image.open(io.BytesIO(data), formats=readable_formats()) as img:
            return img.width * img.height
    except Exception:  # not an image: decode_uploads reports it properly
        return 0


def _parse_on_off(name: str, raw: str | None, default: bool) -> bool:
    from ..config_text import parse_switch

    if raw is None:
        return default
    try:
        return parse_switch(name, raw)
    except ValueError as exc:  # ImgclfError: its message, as a 400
        raise ApiError(400, str(exc)) from None


def _parse_threshold(raw: str, classes: list[str], cutoffs: np.ndarray | None) -> np.ndarray:
    """A request's ?threshold= (multi-label models: one decision threshold for every label, as predict
    --threshold), refused for a single-label model rather than ignored."""
    if cutoffs is None:
        raise ApiError(400, invalid_message("threshold", raw[:40], "unset for a single-label model (it applies to "
                                            "multi-label models, whose labels each have a decision threshold)"))
    from ..multilabel import threshold_vector

    try:
        return threshold_vector(classes, None, float(raw))  # predict --threshold's check
    except ValueError:  # not a number, or out of (0, 1) (ImgclfError is a ValueError)
        raise ApiError(400, invalid_message("threshold", raw[:40], "a probability between 0 and 1 (exclusive)"))


PREDICT_QUERY = ("top_k", "unknown", "threshold")


def _checked_query(request: Request) -> Any:
    """The request's query parameters. A misspelt one (?topk=2) or one given twice is refused: answered without it,
    the client would take the default for what it asked."""
    query = request.query_params
    for name in query.keys():
        if name not in PREDICT_QUERY:
            raise ApiError(400, invalid_message("query parameter", name[:40], PREDICT_QUERY))
        values = query.getlist(name)
        if len(values) > 1:  # the first few: 9,000 repeats made a 36 KB answer
            more = f" and {len(values) - 3:,} more" if len(values) > 3 else ""
            raise ApiError(400, invalid_message(name, Described(", ".join(repr(v[:40]) for v in values[:3]) + more),
                                                "given once"))
    return query


def _parse_top_k(raw: str | None, num_classes: int) -> int:
    if raw is None:
        return min(3, num_classes)
    # ASCII digits only: str.isdigit also accepts "²", which int() refuses
    digits = raw.strip()
    # int() refuses over 4,300 digits (a 500): any number of more than 18 is more classes than there are
    whole = digits.isascii() and digits.isdigit()
    significant = digits.lstrip("0")
    number = (10**18 if len(significant) > 18 else int(significant or "0")) if whole else 0
    if number < 1:
        raise ApiError(400, invalid_message("top_k", raw[:40], f"a whole number >= 1 (above {num_classes}, the "
                                                               "number of classes, lists them all)"))
    return min(number, num_classes)  # asking for more classes than exist lists them all


def decode_uploads(clf: Classifier, uploads: list[Upload]) -> list[np.ndarray | str]:
    """Every upload at the card's size and colour mode, or, for one that cannot be used, the reason (a str):
    that file gets an error entry, as `imgclf predict` gives it an error row; the others are predicted."""
    out: list[np.ndarray | str] = []
    for up in uploads:
        if up.error is not None:
            out.append(up.error)
            continue
        try:
            out.append(clf.decode(io.BytesIO(up.data)))  # type: ignore[arg-type]
        except DecodeError as exc:
            out.append(str(exc))
    return out


def predict_together(clf: Classifier, jobs: list[np.ndarray]) -> list[PixelResults]:
    """Several requests' images through one forward pass (in the batcher's worker thread), split back per request."""
    out = clf.infer_pixels(np.concatenate(jobs) if len(jobs) > 1 else jobs[0])
    bounds = np.cumsum([len(j) for j in jobs])[:-1]
    return [PixelResults(p, s, u) for p, s, u in zip(np.split(out.probabilities, bounds), np.split(out.scores, bounds),
                                                     np.split(out.unknown, bounds))]


def serve(run_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, access_log: bool = True,
          threads: int | None = None, **options: Any) -> None:
    """Serve a run with uvicorn until interrupted (Ctrl-C). threads: forward-pass threads (default: half the cores)."""
    import uvicorn

    check_bindable(host, port)  # before the model loads, and as the usual one-line error, not uvicorn's log
    threads = threads or default_threads()
    app = create_app(run_dir, threads=threads, **options)
    # uvicorn's own lines say where it listens, not what it serves (an int8 export? unknown off?)
    print(startup_line(run_dir, app.state.summary, host, port, threads), flush=True)
    uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info",
                limit_concurrency=MAX_CONNECTIONS, timeout_graceful_shutdown=GRACEFUL_SECONDS)


def check_bindable(host: str, port: int) -> None:
    """Refuse a host this machine cannot listen on, or a port already taken there, naming the option."""
    import errno
    import socket

    listen_on = "a name or address of this machine (127.0.0.1, 0.0.0.0 for every IPv4 interface, :: for every IPv6 one)"
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise invalid("host", host, listen_on, note=getattr(exc, "strerror", None) or str(exc)) from None
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise invalid("port", port, "a free port (0: any free one)", note=f"in use on {host}") from None
            raise invalid("host", host, listen_on, note=exc.strerror or str(exc)) from None
