"""Download a file into the cache: a temp file, the MD5 check, then a rename.

A file under its final name is therefore always complete and, where a checksum is known, verified;
an interrupted or corrupt download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ...errors import invalid
from ..cache import default_cache_dir

log = logging.getLogger(__name__)
CHUNK = 1 << 20


def default_download_dir() -> Path:
    """Beside the decoded-image cache, so $IMGCLF_CACHE moves both."""
    return default_cache_dir() / "downloads"


def check_md5(md5: str | None) -> str | None:
    if md5 is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        raise invalid("md5", md5, "32 hexadecimal digits")
    return md5.lower() if md5 else None


def _md5():  # noqa: ANN202 (hashlib has no public hash type)
    # MD5 is what the data sets publish; it catches corrupt or wrong files, it is not a signature.
    return hashlib.md5(usedforsecurity=False)


def file_md5(path: Path) -> str:
    digest = _md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, folder: str | os.PathLike, md5: str | None, name: str | None = None,
             timeout: float = 60.0, source: str | None = None) -> Path:
    """Return folder/name holding the file at `url`; a cached copy that passes the MD5 check is reused.
    source: what the data set's --source takes, for the offline hint, where it is not a copy of this one file."""
    md5 = check_md5(md5)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid("url", url, "an http:// or https:// address")
    name = name or Path(parts.path).name
    if not name or name.startswith("."):
        raise invalid("url", url, "an address that ends in a file name")
    folder = Path(folder).expanduser()
    dest = folder / name
    if dest.is_file():
        if md5 is None or file_md5(dest) == md5:
            log.info("using %s (cached)", dest)
            return dest
        log.warning("%s does not match MD5 %s; downloading it again", dest, md5)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        digest = _fetch_into(url, fd, timeout, source)
        if md5 is not None and digest != md5:
            raise invalid("url", url, "an address whose file matches its published MD5",
                          note=f"does not match its published MD5: expected {md5}, received {digest}",
                          hint="The download was deleted; try again, or pass --source with a copy you have checked")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("saved %s", dest)
    return dest


def _fetch_into(url: str, fd: int, timeout: float, source: str | None = None) -> str:
    """Stream `url` into the open file `fd`; return the MD5 of what was written."""
    digest = _md5()
    log.info("downloading %s", url)
    request = urllib.request.Request(url, headers={"User-Agent": "imgclf"})
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(request, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            size = 0
            for chunk in iter(lambda: response.read(CHUNK), b""):
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            if expected is not None and expected.isdigit() and size != int(expected):
                raise http.client.IncompleteRead(b"", int(expected) - size)
    except urllib.error.HTTPError as exc:
        raise invalid("url", url, "an address that can be downloaded", note=f"HTTP {exc.code} {exc.reason}",
                      hint="Check --url, or pass --source with a local copy") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise invalid("url", url, "an address that can be reached", note=f"could not download: {reason}",
                      hint=f"If this machine is offline, pass --source with "
                           f"{source or 'a local copy of ' + Path(urllib.parse.urlsplit(url).path).name}") from None
    return digest.hexdigest()
