"""Multi-label data: an index file (CSV or JSON lines) naming each image and the set of labels it carries.

CSV: one row per image, `path,labels`, the labels separated by `;` (an optional header row `path,labels`, which
may name the columns in any order).
JSON lines: one object per line, `{"path": ..., "labels": [...]}` (or a `;`-separated string). Paths are
relative to the index file. An optional third column (CSV header `path,labels,split`; JSON key "split") names
each image's split, train, val or test, for data whose test set is fixed (the automatic split is then not drawn). An empty labels cell is an image that carries none of the labels (a legitimate
negative for every label), but a blank row, a row without a path or a labels column, a file that does not
exist or a label the model does not know is the user's mistake: one line naming the file and its line number.

The labels are held as a multi-hot matrix (N, K) of uint8: `targets`.
"""

from __future__ import annotations

import csv
import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import bad_path, invalid
from .folder import IMAGE_EXTENSIONS, INDEX_SUFFIXES  # the suffixes: the folder scan names them in its errors
from .file_kinds import SUBSET_LIST_HEADER, SUBSET_LIST_HINT
from .folder_checks import alike_class_names

LABEL_SEPARATOR = ";"


@dataclass
class LabelIndex:
    """What an index file holds: absolute image paths, the label names (sorted), and who carries which."""

    path: Path
    classes: list[str]
    files: list[str]
    targets: np.ndarray  # (N, K) uint8 multi-hot
    lines: list[int]  # the index file's line number of each image, for messages
    splits: list[str] | None = None  # the split column, when the index has one


def is_label_index(data: object) -> bool:
    """True for a path to a CSV / JSON-lines file: the multi-label layout (a folder is the class-per-folder one)."""
    return isinstance(data, (str, os.PathLike)) and str(data).lower().endswith(INDEX_SUFFIXES) \
        and not Path(data).is_dir()


HEADER_COLUMNS = frozenset({"path", "labels", "split"})


def _row_error(index: Path, line: int, allowed: str, note: str) -> Exception:
    return invalid("data", f"{index}:{line}", allowed, note=note)


def _split_labels(cell: object, index: Path, line: int) -> list[str]:
    if isinstance(cell, list):
        if not all(isinstance(v, str) for v in cell):
            raise _row_error(index, line, "a row whose labels are strings", note=f"labels {cell!r}")
        joined = [v for v in cell if LABEL_SEPARATOR in v]
        if joined:  # label sets are written back ';'-joined (predictions.csv, predict --format csv)
            raise _row_error(index, line, f"a row whose labels contain no {LABEL_SEPARATOR!r}",
                             note=f"label {joined[0]!r}")
        raw = cell
    elif isinstance(cell, str):
        raw = cell.split(LABEL_SEPARATOR)
    else:
        raise _row_error(index, line, f"a row whose labels are a list or a {LABEL_SEPARATOR!r}-separated string",
                         note=f"labels {cell!r}")
    # NFC: "café" typed and "café" pasted (NFD) looked the same and were two labels
    labels = [unicodedata.normalize("NFC", v.strip()) for v in raw if v.strip()]
    control = [v for v in labels if any(unicodedata.category(ch) == "Cc" for ch in v)]
    if control:  # a line break inside a label (JSON "new\nline") trained, then broke every figure's text
        raise _row_error(index, line, "a row whose labels hold no control characters (line breaks, tabs)",
                         note=f"label {control[0]!r}")
    return sorted(set(labels))


def _csv_rows(index: Path) -> list[tuple[int, str, object, str | None]]:
    rows = []
    header: list[str] | None = None
    with open(index, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        for cells in reader:
            line = reader.line_num
            # the columns by name, in any order: path,split,labels was read as an image row ("split 'labels'"); other
            # named columns are left unread, as a JSON line's other keys are (path,labels,source was read as an
            # image row, "split 'source'")
            names = [c.strip().lower() for c in cells]
            if line == 1 and {"path", "labels"} <= set(names) and len(set(names)) == len(names):
                header = names
                continue
            if line == 1 and tuple(names) == SUBSET_LIST_HEADER:
                raise invalid("data", index, "a folder of class folders, or a multi-label index (path,labels)",
                              note="this is the file list `imgclf subset --mode list` writes for other tools",
                              hint=SUBSET_LIST_HINT)
            if line == 1 and set(names) & HEADER_COLUMNS and not any(n.endswith(IMAGE_EXTENSIONS) for n in names):
                # a header with one name misspelt (path,label) was read as an image row: "'path' not found"
                missing = " and ".join(repr(n) for n in ("path", "labels") if n not in names)
                raise _row_error(index, line, "a header row naming the columns path and labels (and split), in any "
                                 "order, each once", note=f"header {','.join(cells)!r}: no {missing} column"
                                 if missing else f"header {','.join(cells)!r} names a column twice")
            if header is not None and len(cells) != len(header) and any(c.strip() for c in cells):
                # under a header without a split, a third cell was read as one ("split 'cross'"): labels a,b
                raise _row_error(index, line, f"a row of {len(header)} columns, as the header ({','.join(header)}); "
                                 f"an image's labels are separated by {LABEL_SEPARATOR!r} (a;b)",
                                 note=f"{len(cells)} column(s)")
            if not any(c.strip() for c in cells):
                raise _row_error(index, line, "a row `path,labels` (labels separated by ';', may be empty)",
                                 note="empty row")
            if header is not None and header not in (["path", "labels"], ["path", "labels", "split"]):
                named = dict(zip(header, cells))
                cells = [named["path"], named["labels"], *([named["split"]] if "split" in named else [])]
            if len(cells) not in (2, 3):
                raise _row_error(index, line, "a row of 2 columns, `path,labels` (labels separated by ';'), or 3 "
                                 "with a split", note=f"{len(cells)} column(s)")
            rows.append((line, cells[0].strip(), cells[1], cells[2].strip() if len(cells) == 3 else None))
    return rows


def _found(base: Path, path: str) -> str:
    """The absolute path of an index row's `path`, as written or, where that is not a file, in the other Unicode
    normal form (a name typed in NFC for a file macOS stored in NFD: labels and class folders were matched so, index
    paths were "not found") or with Windows separators read as '/'."""
    full = os.path.abspath(base / path)
    if os.path.isfile(full):
        return full
    slashed = path.replace("\\", "/")
    for other in {form: None for text in (path, slashed) for form in
                  (text, unicodedata.normalize("NFD", text), unicodedata.normalize("NFC", text))}:
        candidate = os.path.abspath(base / other)
        if other != path and os.path.isfile(candidate):
            return candidate
    return full


def _jsonl_rows(index: Path) -> list[tuple[int, str, object, str | None]]:
    rows = []
    with open(index, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, 1):
            if not text.strip():
                raise _row_error(index, line, 'a JSON object {"path": ..., "labels": [...]} on every line',
                                 note="empty row")
            try:
                item = json.loads(text)
            except json.JSONDecodeError as exc:
                raise _row_error(index, line, 'a JSON object {"path": ..., "labels": [...]} on every line',
                                 note=f"not JSON: {exc.msg}") from None
            if not isinstance(item, dict) or "path" not in item or "labels" not in item:
                keys = sorted(item) if isinstance(item, dict) else type(item).__name__
                raise _row_error(index, line, 'a JSON object with the keys "path" and "labels"', note=f"{keys}")
            path = item["path"]
            if not isinstance(path, str):  # {"path": 5} was called "no path"
                raise _row_error(index, line, 'a JSON object whose "path" is a string', note=f"path {path!r}")
            split = item.get("split")  # stripped as a CSV cell is: " train" is train in either format
            rows.append((line, path.strip() if isinstance(path, str) else "", item["labels"],
                         split.strip() if isinstance(split, str) else split))
    return rows


def read_label_index(index: str | os.PathLike, classes: list[str] | None = None) -> LabelIndex:
    """Read and check an index file. classes: the label set to hold the rows to (a trained model's); None: the
    labels found, sorted."""
    from .folder import file_identity

    classes_given = classes
    index = Path(index)
    if not index.is_file():
        raise bad_path("data", index, "an image folder, or a CSV / JSON-lines index of images and their labels",
                       "a folder" if index.is_dir() else "not found")
    try:
        rows = _jsonl_rows(index) if index.suffix.lower() in (".jsonl", ".ndjson") else _csv_rows(index)
    except UnicodeDecodeError as exc:
        raise bad_path("data", index, "a UTF-8 text index file", f"not UTF-8 text: {exc.reason}") from None
    if not rows:
        raise bad_path("data", index, "an index file listing at least one image", "no rows")
    base = index.parent
    files, label_sets, lines, seen, splits = [], [], [], {}, []
    for line, path, cell, split in rows:
        if split not in (None, "train", "val", "test"):
            raise _row_error(index, line, "a row whose split is train, val or test", note=f"split {split!r}")
        splits.append(split)
        if not path:
            raise _row_error(index, line, "a row naming its image: the path column (the first, without a header), "
                             "or a JSON line's \"path\"", note="no path")
        full = _found(base, path)
        if not os.path.isfile(full):
            header = line == 1 and not path.lower().endswith(IMAGE_EXTENSIONS) and index.suffix.lower() not in (
                ".jsonl", ".ndjson")
            raise _row_error(index, line, "a row naming an existing image file (relative to the index file)",
                             note=f"{path!r} is a folder" if os.path.isdir(full) else
                             f"{path!r} not found" + (", nor a header: a header row names path and labels (and split), "
                                                      "in any order (an index file is a multi-label run's "
                                                      "data, each row a label set; single-label images go in "
                                                      "class folders)" if header else ""))
        key = file_identity(full)  # a link to a listed file is that file: in two splits it would leak
        if key in seen:
            first_line, first_path = seen[key]
            same_name = os.path.normpath(path) == os.path.normpath(first_path)  # "./a/../a/x.png" is no link
            note = f"{path!r} already on line {first_line}" if first_path == path else \
                f"{path!r} is the file {first_path!r} of line {first_line}" + ("" if same_name else " (a link to it)")
            raise _row_error(index, line, "a row per image (list all of its labels in one row)", note=note)
        seen[key] = (line, path)
        files.append(full)
        label_sets.append(_split_labels(cell, index, line))
        lines.append(line)
    found = sorted({label for labels in label_sets for label in labels})
    if classes is None:
        classes = found
        if len(classes) < 2:
            raise bad_path("data", index, "an index whose rows use at least 2 distinct labels",
                           f"labels found: {classes}")
    else:
        known = set(classes)
        rows_of: dict[str, list[int]] = {}  # every unknown label at once: one refusal per label cost a run each
        for line, labels in zip(lines, label_sets):
            for label in labels:
                if label not in known:
                    rows_of.setdefault(label, []).append(line)
        if rows_of:
            first = min(line for found_on in rows_of.values() for line in found_on)
            counts = ", ".join(f"{label!r} on {len(on)} row{'s' * (len(on) > 1)} (first line {on[0]})"
                               for label, on in sorted(rows_of.items())[:10])
            counts += f" and {len(rows_of) - 10} more" if len(rows_of) > 10 else ""  # another data set's index
            raise _row_error(index, first, f"rows whose labels are among the model's labels {classes}",
                             note=f"unknown label(s): {counts}")
    column = {c: i for i, c in enumerate(classes)}
    targets = np.zeros((len(files), len(classes)), dtype=np.uint8)
    for row, labels in enumerate(label_sets):
        targets[row, [column[label] for label in labels]] = 1
    given = [s for s in splits if s is not None]
    if given and len(given) != len(splits):
        line = lines[splits.index(None)]
        raise _row_error(index, line, "a split on every row once one row has one", note="no split")
    if given and "train" not in given and classes_given is None:  # training's; an evaluation reads test rows
        raise bad_path("data", index, "an index whose split column names some train images", "no train row")
    return LabelIndex(index, list(classes), files, targets, lines, splits if given else None)


def warn_comma_labels(index: LabelIndex) -> None:
    """Warn of labels that look like typing slips: a comma or '|' in a name, most likely a cell of several labels
    written 'a,b' or 'a|b' (quoted, so one cell) where the separator is ';', which became one label nobody meant;
    names made of other labels and spaces ('cat bird' beside 'cat' and 'bird': a cell whose labels were separated
    by spaces, as Planet's tags are), which became labels nobody meant; and names that differ only in case or
    spaces ('Blue', 'blue'), which became two. Only warnings: a name may hold either. Said by `inspect` and by
    training, which read the index for the user."""
    from ..notices import warn

    joined = [c for c in index.classes if "," in c or "|" in c]
    if joined:
        shown = ", ".join(repr(c) for c in joined[:3]) + (" ..." if len(joined) > 3 else "")
        many = len(joined) != 1
        warn(f"{len(joined)} label{'s' if many else ''} of {index.path.name} contain{'' if many else 's'} a comma "
             f"or '|' ({shown}): each is one label; an image's several labels are separated by "
             f"{LABEL_SEPARATOR!r} (a;b)")
    # Planet's tags ("clear primary road") are separated by spaces: every combination became a label of its own
    words = set(index.classes)
    spaced = [c for c in index.classes if len(c.split()) > 1 and all(w in words for w in c.split())]
    if spaced:
        shown = ", ".join(f"{c!r} = {' + '.join(repr(w) for w in c.split())}" for c in spaced[:3]) + \
            (" ..." if len(spaced) > 3 else "")
        many = len(spaced) != 1
        warn(f"{len(spaced)} label{'s' if many else ''} of {index.path.name} {'are' if many else 'is'} made of other "
             f"labels and spaces ({shown}): each is one label of its own; if spaces separate an image's labels "
             f"there, write them separated by {LABEL_SEPARATOR!r} (a;b)")
    twins = alike_class_names(index.classes)
    if twins:
        shown = "; ".join(" and ".join(repr(n) for n in names) for names in twins[:3]) + \
            (" ..." if len(twins) > 3 else "")
        warn(f"labels of {index.path.name} that differ only in case or spaces are different labels ({shown}): "
             "write each label one way")


def label_stats(targets: np.ndarray, classes: list[str]) -> dict[str, object]:
    """Label cardinality (mean labels per image), per-label counts, images with none, and the co-occurrence
    matrix (images carrying both labels; the diagonal is the label's count)."""
    t = np.asarray(targets, dtype=np.int64)
    co = t.T @ t if len(t) else np.zeros((len(classes), len(classes)), dtype=np.int64)
    return {
        "images": int(len(t)),
        "cardinality": round(float(t.sum(1).mean()), 4) if len(t) else 0.0,
        "counts": {c: int(v) for c, v in zip(classes, t.sum(0))},
        "no_label": int((t.sum(1) == 0).sum()) if len(t) else 0,
        "cooccurrence": co.tolist(),
    }


def primary_labels(targets: np.ndarray) -> np.ndarray:
    """One class id per image for the code that needs a single label (per-class caps, group search): its
    rarest label, 0 for an image with none."""
    t = np.asarray(targets)
    if not len(t):
        return np.zeros(0, dtype=np.int64)
    rarity = np.where(t > 0, t.sum(0)[None, :], np.iinfo(np.int64).max)
    return np.where(t.any(1), rarity.argmin(1), 0).astype(np.int64)


def positive_weights(spec: str, targets: np.ndarray, classes: list[str]) -> list[float] | None:
    """pos_weight of each label's binary loss: none; balanced, negatives / positives in the training split
    (PyTorch's BCEWithLogitsLoss recipe: a label on 10 % of the images gets 9); or a JSON file of weights."""
    from ..data.imbalance import class_weights

    if spec != "balanced":
        # a JSON file maps label -> weight exactly as for classes; its checks and messages are the same
        return class_weights(spec, np.zeros(0, dtype=np.int64), classes)
    t = np.asarray(targets, dtype=np.float64)
    positives = t.sum(0)
    everywhere = [c for c, p in zip(classes, positives) if p == len(t) and len(t)]
    if everywhere:  # no negatives: 0 / n made its positive term weigh nothing, and the label was never learnt
        from ..notices import warn

        warn(f"class_weight balanced: {', '.join(map(repr, everywhere[:10]))} {'is' if len(everywhere) == 1 else 'are'}"
             " on every training image, with no negative to balance: weight 1 (balanced would make it 0, and the "
             "label would never be learnt)")
    return [float((len(t) - p) / p) if 0 < p < len(t) else 1.0 for p in positives]


def read_label_folder(root: str | os.PathLike) -> LabelIndex:
    """Multi-label data laid out class-per-folder: an image carries every class folder it sits in, the same file
    found through hard links (or symbolic links) in several folders counting once. Splits (train/ val/ test/)
    become the index's split column. Used with task=multilabel only: for single-label data a file in two class
    folders is a conflict the audit reports, not a label set."""
    from .folder import file_identity, scan_folder

    scan = scan_folder(root)
    first: dict[tuple[int, int], int] = {}
    files, label_sets, splits = [], [], []
    for split, items in scan.files.items():
        for path, cls in items:
            key = file_identity(path)
            if key in first:
                row = first[key]
                if splits[row] != split:
                    raise bad_path("data", root, "a folder where each image (and its hard links) sits in one split",
                                   f"{path} is also {files[row]} in {splits[row]}/")
                label_sets[row].add(cls)
                continue
            first[key] = len(files)
            files.append(os.path.abspath(path))
            label_sets.append({cls})
            splits.append(split)
    classes = scan.classes
    column = {c: i for i, c in enumerate(classes)}
    targets = np.zeros((len(files), len(classes)), dtype=np.uint8)
    for row, labels in enumerate(label_sets):
        targets[row, [column[c] for c in labels]] = 1
    given = None if scan.layout == "flat" else splits
    return LabelIndex(Path(root), classes, files, targets, [0] * len(files), given)
