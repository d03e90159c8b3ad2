"""Step-imbalanced subsets of an image folder, built the way S4 (Buda et al. 2017) builds them.

An equal base set of `per_class` images is drawn per class; minority classes then lose images and majority
classes gain images so that the total stays classes x per_class (see `imbalance.step_counts`). Each class's
files are drawn from one seeded permutation of that class, so the base set is a prefix, a minority class's
images are a prefix of its base set, and a majority class's images extend its base set: the subsets for
different ratios are nested, as if made by removal and addition from the same base.

The subset is written as links (symlinks or hardlinks) or as a file list, never as pixel copies. On a
train/ (val/, test/) layout only train/ is made imbalanced; the other splits are linked untouched.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import tempfile
import unicodedata
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import bad_path, invalid
from ..io import outside_data, read_csv, read_json, writable_folder, write_csv, write_json
from .file_kinds import SUBSET_LIST_HEADER
from .folder import count_skipped, scan_folder
from .imbalance import step_counts
from ..file_names import shell_word

MODES = ("symlink", "hardlink", "list")
MANIFEST = "subset.json"
FILE_LIST = "subset.csv"


def choose_minority(counts: dict[str, int], num_minority: int) -> list[str]:
    """The `num_minority` smallest classes (S4 takes the 5 smallest of its 10); ties broken by name."""
    return sorted(sorted(counts, key=lambda c: (counts[c], c))[:num_minority])


# how far a given share may be from i/k: the error message prints the shares to 6 digits (0.333333 for 1/3), and
# what it prints must be accepted
MU_TOLERANCE = 1e-4


def _num_minority(classes: Sequence[str], mu: float | None, minority: Sequence[str] | None) -> int:
    k = len(classes)
    if minority:
        unknown = sorted(set(minority) - set(classes))
        if unknown:
            raise invalid("minority", list(minority), "classes of the data set",
                          note=f"unknown {unknown}; the classes are {list(classes)}")
        if len(set(minority)) != len(minority):
            raise invalid("minority", list(minority), "distinct classes", note="repeats a class")
        if len(minority) >= k:
            raise invalid("minority", list(minority), f"at most {k - 1} of the {k} classes",
                          note="a step imbalance needs at least one majority class")
        if mu is not None and abs(mu - len(minority) / k) > MU_TOLERANCE:
            raise invalid("mu", mu, f"the share of minority classes ({len(minority)}/{k} = {len(minority) / k:g}) "
                                    f"when both are given", also={"minority": list(minority)})
        return len(minority)
    if mu is None:  # half the classes, rounded down (0.5 itself is no share of an odd number of classes)
        return max(1, k // 2)
    allowed = ", ".join(f"{i / k:g}" for i in range(1, k))
    m = round(mu * k) if math.isfinite(mu) else 0
    if abs(mu - m / k) > MU_TOLERANCE or not 0 < m < k:
        raise invalid("mu", mu, f"a share of the {k} classes: one of {{{allowed}}}")
    return m


def _class_order(paths: list[str], name: str, seed: int) -> list[str]:
    # One permutation per class, seeded by (seed, class name): a class's draw does not depend on which
    # other classes exist or which of them are minority.
    rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
    return [paths[i] for i in rng.permutation(len(paths))]


def plan_subset(data: str | os.PathLike, per_class: int, rho: float, mu: float | None = None, seed: int = 0,
                minority: Sequence[str] | None = None) -> dict[str, Any]:
    """Decide which files go where, without touching the disk: the manifest plus {split: [(path, class)]}."""
    from .select import without_empty_classes

    scan = without_empty_classes(scan_folder(data, allow_empty=True), "studied")
    if minority:  # as class names are read from folders: "façe" typed in NFD (macOS) was "unknown ['façe']"
        minority = [unicodedata.normalize("NFC", name) for name in minority]
    pool_split = "train" if scan.layout == "splits" else "all"
    pool: dict[str, list[str]] = {c: [] for c in scan.classes}
    for path, cls in scan.files[pool_split]:
        pool[cls].append(path)
    sizes = {c: len(p) for c, p in pool.items()}
    m = _num_minority(scan.classes, mu, minority)
    minority_classes = sorted(minority) if minority else choose_minority(sizes, m)
    largest = max(sizes.values())
    if isinstance(rho, (int, float)) and largest < rho < math.inf:
        # even one minority image asks more than the largest class holds ("needs 1000...0 images", 309 digits)
        raise invalid("rho", rho, f"at most {largest:,} for this data: a minority class keeps at least one image "
                                  f"and its largest class has {largest:,}",
                      hint=f"See imgclf inspect {shell_word(data)}")
    n_min, n_maj = step_counts(len(scan.classes), m, per_class, rho)
    want = {c: n_min if c in minority_classes else n_maj for c in scan.classes}
    short = {c: f"{sizes[c]} < {want[c]}" for c in scan.classes if sizes[c] < want[c]}
    fewest = dict(zip(("minority", "majority"), step_counts(len(scan.classes), m, 1, rho)))
    if short and any(sizes[c] < fewest["minority" if c in minority_classes else "majority"] for c in scan.classes):
        # no per_class helps: rho 29.9 = 299/10 keeps a minority class at a multiple of 10 images
        raise invalid("rho", rho, f"a ratio whose smallest step imbalance fits the data: rho={rho:g} needs at least "
                                  f"{fewest['majority']} images in each majority class and {fewest['minority']} in "
                                  "each minority class, at any per_class", also={"per_class": per_class},
                      note=f"too few in {short}", hint="Lower rho, or choose other minority classes" + (
                          " (give it as a fraction of smaller numbers, such as 30 for 29.9)" if fewest["minority"] > 1
                          else ""))
    if short:
        raise invalid("per_class", per_class, f"small enough for the data: with rho={rho:g} it needs {n_maj} images in "
                                              f"each majority class and {n_min} in each minority class",
                      also={"rho": rho}, note=f"too few in {short}",
                      hint="Lower per_class or rho, or choose other minority classes")
    unreadable: list[dict[str, str]] = []
    chosen = {c: _readable_prefix(_class_order(pool[c], c, seed), want[c], unreadable) for c in scan.classes}
    short = {c: f"{len(chosen[c])} readable < {want[c]}" for c in scan.classes if len(chosen[c]) < want[c]}
    if short:
        raise invalid("per_class", per_class, f"small enough for the data's readable images: with rho={rho:g} it "
                                              f"needs {n_maj} in each majority class and {n_min} in each minority "
                                              "class", also={"rho": rho},
                      note=f"too few in {short}; {len(unreadable)} unreadable file(s) skipped, the first "
                           f"{unreadable[0]['path']} ({unreadable[0]['reason']})",
                      hint=f"Lower per_class or rho; see imgclf inspect {shell_word(data)}")
    files = {("train" if scan.layout == "splits" else "all"): [(p, c) for c in scan.classes for p in sorted(chosen[c])]}
    for split, items in scan.files.items():
        if split != pool_split:
            files[split] = list(items)  # val/ and test/ stay untouched
    total = sum(want.values())
    manifest = {
        "source": str(Path(data).resolve()),
        "layout": scan.layout,
        "mu": round(m / len(scan.classes), 6),
        "rho": float(rho),
        "rho_actual": round(n_maj / n_min, 6),
        "per_class": int(per_class),
        "seed": int(seed),
        "classes": scan.classes,
        "minority": minority_classes,
        "majority": [c for c in scan.classes if c not in minority_classes],
        "minority_count": n_min,
        "majority_count": n_maj,
        "counts": want,
        "total": total,
        "target_total": len(scan.classes) * per_class,
        "exact": total == len(scan.classes) * per_class and n_maj == rho * n_min,
        "other_splits": {s: len(v) for s, v in files.items() if s not in ("all", "train")},
        # files the draw met that do not decode: passed over, so that the counts above are images a run trains on
        "unreadable": unreadable,
        # files and folders the scan left out (a name that is not UTF-8, a broken link, not an image): a class
        # folder among them changes the class count, and so mu
        "skipped": scan.skipped,
    }
    return {"manifest": manifest, "files": files, "root": scan.root}


def _readable_prefix(ordered: list[str], wanted: int, unreadable: list[dict[str, str]]) -> list[str]:
    """The first `wanted` files of a class's permutation that decode, the others added to `unreadable`: skipping
    keeps the subsets for different ratios nested, as the permutation is. A listed file that did not decode was
    drawn, and a run on the subset skipped it: rho 3 was trained as 3.33 while subset.json said 3."""
    from .decode import DecodeError, decode_image

    kept: list[str] = []
    for path in ordered:
        if len(kept) == wanted:
            break
        try:
            decode_image(path, 64, "rgb")  # (a JPEG decodes at a reduced scale: the check reads the whole file)
        except DecodeError as exc:
            unreadable.append({"path": path, "reason": str(exc)})
            continue
        kept.append(path)
    return kept


REQUEST_KEYS = ("source", "mu", "rho", "per_class", "seed", "minority", "mode")


def _same_request(existing: dict[str, Any], manifest: dict[str, Any], mode: str) -> bool:
    return not _request_changes(existing, dict(manifest, mode=mode))


def _request_changes(existing: dict[str, Any], manifest: dict[str, Any]) -> dict[str, str]:
    """What the subset in a folder was drawn with that differs from this request: {key: "was -> now"}."""
    return {k: f"{existing.get(k)!r} -> {manifest.get(k)!r}" for k in REQUEST_KEYS
            if existing.get(k) != manifest.get(k)}


def build_subset(data: str | os.PathLike, out: str | os.PathLike, per_class: int, rho: float,
                 mu: float | None = None, seed: int = 0, minority: Sequence[str] | None = None,
                 mode: str = "symlink") -> dict[str, Any]:
    """Write the step-imbalanced subset to `out` (links + subset.json + subset.csv) and return the manifest.

    Building the same subset again into the same `out` is a no-op, so a study can call this on every resume.
    The folder is assembled under a temporary name and renamed into place: an interrupted build leaves no
    half-made subset behind.
    """
    if mode not in MODES:
        raise invalid("mode", mode, MODES)
    out = writable_folder("out", out)
    outside_data("out", out, data)  # inside, its links would be read as one more class of the data
    plan = plan_subset(data, per_class, rho, mu, seed, minority)
    manifest = dict(plan["manifest"], mode=mode)
    if out.exists():
        earlier = read_manifest(out)
        if earlier is not None and _same_request(earlier, manifest, mode):
            _refuse_stale(out, _rows(plan, mode))
            return earlier
        if earlier is not None:
            raise bad_path("out", out, "a new or empty folder, or one holding this same subset",
                           f"holds a subset drawn otherwise: {_request_changes(earlier, manifest)}",
                           hint="Give another --out (each ratio a folder of its own), or delete this one")
        if any(out.iterdir()):
            raise bad_path("out", out, "a new or empty folder, or one holding this same subset", "holds other files")
        out.rmdir()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would stay on the subset after the rename: others could not read it
    try:
        rows = _rows(plan, mode)
        _link(rows, tmp, mode)
        write_csv(tmp / FILE_LIST, SUBSET_LIST_HEADER, rows)
        write_json(tmp / MANIFEST, manifest)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The subset.json `build_subset` wrote in `folder`, or None (none there, or not one it could have written)."""
    try:
        found = read_json(Path(folder) / MANIFEST)
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _rows(plan: dict[str, Any], mode: str) -> list[list[str]]:
    """subset.csv's rows for `plan`: split, class, the file's absolute path, and its link in the subset."""
    root: Path = plan["root"]
    layout = plan["manifest"]["layout"]
    rows = []
    for split, items in plan["files"].items():
        split_root = root if layout == "flat" else _split_folder(root, items)
        for path, cls in items:
            rel_in_class = _relative_in_class(path, split_root, cls)
            link = Path(cls) / rel_in_class if layout == "flat" else Path(split) / cls / rel_in_class
            rows.append([split, cls, os.path.abspath(path), "" if mode == "list" else str(link)])
    return rows


def _link(rows: list[list[str]], tmp: Path, mode: str) -> None:
    if mode == "list":
        return
    for _, _, path, link in rows:
        target = tmp / link
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "symlink":
            os.symlink(path, target)
        else:
            try:
                os.link(path, target)
            except OSError as exc:
                raise invalid("mode", mode, "symlink or list when out is not on the file system of the data",
                              note=f"{exc.strerror or exc} linking {path}") from None


def _refuse_stale(out: Path, rows: list[list[str]]) -> None:
    """A folder holding this request's subset must still hold what the data draws now: an image removed or made
    unreadable since changes a class's draw, and a link whose image is gone is skipped by a run. Before, the
    folder was taken as it stood, and a study resumed on it trained on another subset than the one it named."""
    try:
        listed = [[row.get(k, "") for k in SUBSET_LIST_HEADER] for row in read_csv(out / FILE_LIST)]
    except (OSError, UnicodeDecodeError, csv.Error):
        listed = None
    why = None
    if listed is None:
        why = f"its {FILE_LIST} cannot be read"
    elif _real(listed) != _real(rows):  # (the data given by another path to it: a link, /tmp and /private/tmp)
        differ = sorted(_real(listed) ^ _real(rows))
        why = (f"{len(differ)} of its rows differ from a draw of the data now (an image removed, added or made "
               f"unreadable since), the first {differ[0][2]}")
    else:
        broken = [link for _, _, path, link in rows if link and not _still_links(out / link, path)]
        if broken:
            why = f"{len(broken)} of its links no longer reach their image, the first {out / broken[0]}"
    if why is not None:
        raise bad_path("out", out, "a new or empty folder, or one holding this same subset as the data draws it now",
                       why, hint="Delete this folder and run the command again to draw the subset afresh")


def _real(rows: list[list[str]]) -> set[tuple[str, ...]]:
    return {(split, cls, os.path.realpath(path), link) for split, cls, path, link in rows}


def _still_links(link: Path, path: str) -> bool:
    try:
        return os.path.samefile(link, path)  # a symlink to it, or a hardlink to the file still there
    except OSError:
        return False


def _split_folder(root: Path, items: list[tuple[str, str]]) -> Path:
    # The split folder may be spelled valid/ or validation/: take it from the files themselves.
    path, cls = items[0]
    root = root.resolve()
    for p in Path(path).parents:
        if unicodedata.normalize("NFC", p.name) == cls and p.parent.parent.resolve() == root:
            return p.parent
    raise RuntimeError(f"cannot place {path} under a split folder of {root}")  # a bug: scan_folder guarantees one


def _relative_in_class(path: str, split_root: Path, cls: str) -> str:
    """The path below its class folder, so files in nested sub-folders cannot collide. The folder's name on disk
    may be another normal form of the class's (NFD, as macOS writes): its files then keep that folder as a
    sub-folder of the class's, so that a café/ beside a cafe\u0301/ (one class) link 0.png twice without a clash."""
    parts = Path(os.path.relpath(path, split_root)).parts
    return os.path.join(*(parts[1:] if parts[0] == cls else parts))


# A subset whose total moved by more than this share of per_class x classes is said as a warning, not a note: ratios
# compared at such different sizes confound the ratio with the amount of data (S4 keeps the total fixed).
TOTAL_MOVED_WARNING = 0.10


def exact_per_class(per_class: int, classes: int, step: int) -> int:
    """The --per-class nearest `per_class` whose total (per-class x classes) is a whole number of `step`s: totals
    are j x step, and j x step / classes is whole when j is a multiple of classes / gcd(step, classes)."""
    every = classes // math.gcd(step, classes)
    below = max(1, int(per_class * classes / step // every))
    sizes = [j * every * step // classes for j in (below, below + 1)]
    return min(sizes, key=lambda n: (abs(n - per_class), n))


def subset_notes(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """What a drawn subset's manifest differs in from what was asked, as (note|warning, text): files and folders of
    the data the scan left out, the ratio moved by
    whole images, or the total moved because a ratio p/q makes the class sizes come in multiples of q and p (with
    the nearest --per-class that is exact)."""
    from fractions import Fraction

    notes = []
    if manifest.get("skipped"):
        first = manifest["skipped"][0]
        notes.append(("warning", f"{count_skipped([s['path'] for s in manifest['skipped']])} of the data left out "
                                 f"(listed in {MANIFEST}), the first {first['path']}: {first['reason']}"))
    rho, actual = manifest["rho"], manifest["rho_actual"]
    if actual != rho:
        notes.append(("note", f"the ratio is {actual:.10g}, not {rho:.10g}: whole images cannot make it exactly "
                              "(give rho as a fraction of small numbers, such as 1.25 = 5/4)"))
    total, target = manifest["total"], manifest["target_total"]
    if total != target:
        k, n_min = len(manifest["classes"]), len(manifest["minority"])
        ratio = Fraction(rho).limit_denominator(100)
        moved = f"the total is {total} images instead of {target} ({100 * (total - target) / target:+.0f} %)"
        if abs(float(ratio) - rho) < 1e-9:
            p, q = ratio.numerator, ratio.denominator
            step = n_min * q + (k - n_min) * p
            nearest = exact_per_class(manifest["per_class"], k, step)
            of = f"rho {rho:g} = {p}/{q}" if q > 1 else f"rho {rho:g}"
            text = (f"{moved}; with {of}, a minority class holds a multiple of {q} image{'s' * (q > 1)} and a majority "
                    f"class the same multiple of {p}, so totals come in steps of {step} ({n_min} x {q} + "
                    f"{k - n_min} x {p}); --per-class {nearest} gives exactly {nearest * k}")
        else:
            text = f"{moved}: whole images ({manifest['minority_count']} and {manifest['majority_count']} a class)"
        level = "warning" if abs(total - target) > TOTAL_MOVED_WARNING * target else "note"
        notes.append((level, text))
    return notes
