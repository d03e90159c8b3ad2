"""Read the images of a multipart upload into memory, within limits, with a clear error for every way it fails.

Uploads never touch the disk: Starlette's parser would spool parts over 1 MB to a temporary file, so the
spool size is raised to the request limit, which is enforced on the byte stream before parsing finishes.
Client file names are kept only as labels to echo back; nothing here opens a path.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from ..errors import Described, ImgclfError, invalid_message

FIELD = "files"
BODY_SECONDS = 120  # a whole upload's time: 10 MB at under 1 Mbit/s


class ApiError(ImgclfError):
    """A request the server refuses: HTTP status, a message for people (built by `errors.invalid_message`),
    optional details for programs."""

    def __init__(self, status: int, message: str, **details: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    def __reduce__(self):  # pickled with what __init__ takes; the details come back as the instance's state
        return type(self), (self.status, self.message), {"details": self.details}


@dataclass
class Upload:
    name: str  # the client's file name, shortened; only ever echoed back
    content_type: str
    data: bytes
    error: str | None = None  # why this one file cannot be used (it gets an error entry; the others are predicted)


class _TooManyFiles(Exception):
    pass


class _InMemoryParser(MultiPartParser):
    def __init__(self, request: Request, stream: AsyncIterator[bytes], max_bytes: int, max_files: int):
        super().__init__(request.headers, stream, max_files=float("inf"), max_fields=16, max_part_size=64 * 1024)  # type: ignore[arg-type]
        self.spool_max_size = max_bytes + 1  # the whole body is bounded by max_bytes: parts stay in memory
        self._file_limit = max_files
        self.parts_begun = 0
        self.last_name = ""  # the last part's file name, for the error of a body cut inside it
        self.ended = False  # whether the closing boundary came: Starlette drops a part left open without a word

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self.parts_begun += 1

    def on_headers_finished(self) -> None:
        part = self._current_part
        _, options = parse_options_header(part.content_disposition)
        if b"filename" not in options and options.get(b"name") == FIELD.encode():
            # curl -F "files=<photo.png;type=image/png" and requests' (None, data) send no filename=: read as a
            # text field, the image was "a field of text", or "over 64 KB" for a photo. Every part of the field
            # is a file, whatever its Content-Type: the decoder tells an image by its bytes
            part.content_disposition += b'; filename=""'
        super().on_headers_finished()
        extended = _extended_filename(part.content_disposition)
        if extended and part.file is not None:  # filename*= (RFC 6266: it wins over filename=), which Starlette drops
            part.file.filename = extended
        self.last_name = part.file.filename if part.file is not None else ""
        if self._current_files > self._file_limit:
            raise _TooManyFiles()

    def on_end(self) -> None:
        self.ended = True


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.3g} MB"


_MULTIPART = f"multipart/form-data with the images in the field '{FIELD}'"


def _too_large(received: Described, max_bytes: int) -> str:
    return invalid_message("upload", received, f"at most {_megabytes(max_bytes)} ({max_bytes} bytes)")


async def _limited(request: Request, max_bytes: int) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise ApiError(413, _too_large(Described(f"more than {max_bytes} bytes"), max_bytes), limit_bytes=max_bytes)
        yield chunk


async def read_uploads(request: Request, max_bytes: int, max_files: int) -> list[Upload]:
    """The request's image parts (field `files`), in order. Raises ApiError for a request unacceptable as a whole;
    a part that is not an image type, or empty, comes back with its `error` set."""
    length = request.headers.get("content-length")
    if length is not None:
        if not (length.isascii() and length.isdigit()):
            raise ApiError(400, invalid_message("Content-Length", length[:40], "a number of bytes"))
        size = int(length) if len(length) <= 18 else max_bytes + 1  # int() refuses over 4,300 digits
        if size == 0:
            raise ApiError(400, invalid_message("request body", Described("an empty body"), _MULTIPART))
        if size > max_bytes:
            raise ApiError(413, _too_large(Described(f"{length[:40]} bytes"), max_bytes), limit_bytes=max_bytes)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(415, invalid_message("Content-Type", content_type[:100], _MULTIPART,
                                            note=None if content_type else "no Content-Type header"))
    parser = _InMemoryParser(request, _limited(request, max_bytes), max_bytes, max_files)
    try:
        # a body that stops arriving would hold its connection and what it sent for ever (uvicorn has no body
        # timeout): a whole upload gets BODY_SECONDS
        form = await asyncio.wait_for(parser.parse(), BODY_SECONDS)
    except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
        raise ApiError(408, invalid_message("request body", Described(f"one not complete after {BODY_SECONDS} s"),
                                            "a complete upload")) from None
    except _TooManyFiles:
        raise ApiError(413, invalid_message("files", Described(f"more than {max_files} files"),
                                            f"at most {max_files} files per request"), max_files=max_files) from None
    except MultiPartException as exc:
        raise ApiError(400, invalid_message("request body", Described("a body that could not be parsed"),
                                            "well-formed multipart/form-data", note=exc.message)) from None
    except ClientDisconnect:
        raise ApiError(400, invalid_message("request body", Described("part of one: the client disconnected"),
                                            "a complete upload")) from None
    if parser.parts_begun and not parser.ended:
        await form.close()
        cut = f" ({parser.last_name[:100]!r})" if parser.last_name else ""  # (the client's name, bounded)
        raise ApiError(400, invalid_message("request body", Described(f"one that ends inside part {parser.parts_begun}"
                                                                      f"{cut}, before the closing boundary"),
                                            "well-formed multipart/form-data, closed by --BOUNDARY--",
                                            note="that part would be lost"))
    try:
        uploads, others = [], []
        for key, value in form.multi_items():
            if key == FIELD and isinstance(value, UploadFile):
                uploads.append(Upload(_display_name(value.filename, len(uploads)),
                                      (value.content_type or "").lower(), value.file.read()))
            else:
                others.append(key)
    finally:
        await form.close()
    if others:
        raise ApiError(400, invalid_message("form field", Described(f"field(s) {sorted(set(others))[:10]}"),
                                            f"'{FIELD}' only, one file each"))
    if not uploads:
        raise ApiError(400, invalid_message("request body", Described("no file"),
                                            f"at least one image in the form field '{FIELD}'"))
    # problems of one file: reported in its entry, as `imgclf predict` reports them in its row. Not its declared
    # Content-Type: S3 serves objects stored without one as binary/octet-stream, and every such image was refused
    for up in uploads:
        if not up.data:
            up.error = "empty file (0 bytes)"  # the decoder's words for an empty file on disk
    return uploads


_EXTENDED = re.compile(rb"""filename\*\s*=\s*"?([^;"\s]+)""", re.IGNORECASE)


def _extended_filename(disposition: bytes) -> str | None:
    """A part's RFC 5987 file name (filename*=UTF-8''%C3%A9t%C3%A9.png), decoded; None where there is none or it
    does not decode (the plain filename= stands)."""
    found = _EXTENDED.search(disposition)
    if found is None:
        return None
    charset, _, rest = found.group(1).decode("latin-1").partition("'")
    _, _, encoded = rest.partition("'")
    try:
        return unquote(encoded, encoding=charset or "utf-8", errors="strict") or None
    except (LookupError, UnicodeDecodeError):
        return None


def _display_name(filename: str | None, index: int) -> str:
    # Only the last path component, printable, bounded: it is echoed in JSON and on the page, never opened.
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:200]
    return name or f"file{index}"
