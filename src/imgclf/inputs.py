"""What the prediction API accepts as an image, and the checks that run on it before any work: paths (folders
expanded as training reads a class folder), PIL images, numpy arrays (one image or a batch) and open binary
files. A wrong kind of input is the caller's error, named with the value received and what is allowed."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data.file_kinds import IMAGE_EXTENSIONS, left_out_by_name
from .data.decode import FLOAT_UNIT_TOP
from .data.folder import walk_images
from .errors import Described, bad_path, invalid, whole_number

# A path (file or folder), a PIL image, or a numpy array: H x W or H x W x C (C = 1, 3 or 4, RGB(A) order), uint8
# 0..255 or float in [0, 1]; a 4-D array is a batch of such images. An open binary file works too (what serve passes).
ImageInput = str | os.PathLike | np.ndarray | Image.Image | torch.Tensor
IMAGE_KINDS = ("an image file or folder path, a PIL image (turned upright by its EXIF orientation, as a file is), "
               "a numpy array (H x W or H x W x C with C 1, 3 or 4, in RGB(A) order: OpenCV's BGR as a[..., ::-1]; "
               "uint8 (or whole numbers 0..255 of a signed integer type), or float in [0, 1]; N x H x W x C for a "
               "batch), or a torch tensor laid out as torchvision lays images out (C x H x W, N x C x H x W)")


def expand_inputs(items: Iterable[str | os.PathLike], empty: list[str] | None = None,
                  others: list[str] | None = None, unread: list[str] | None = None,
                  utf8_names: bool = True) -> list[str]:
    """Files as given; folders expanded to their image files the way training reads a class folder (recursively,
    hidden entries skipped, symlinked folders followed once). An image name that cannot be read (a dangling
    link) is kept, so that its prediction row says why; other files are not images and are left out. `empty`:
    where given, the folders holding no image are appended to it; `others`: the files left out; `unread`: the
    folders and entries the system would not list or stat, as "path (reason)" (their images, if any, are not
    among those returned). A link back to a folder already read loses no image and is not named. utf8_names: leave
    out (and name) a name that is not UTF-8; predict, whose output escapes it, reads it as it reads one named."""
    out: list[str] = []
    for item in items:
        given = os.fspath(item)
        # "~/x" is expanded as a shell would; any other file keeps the spelling it was given ("./a.png" came back
        # as "a.png" and "http://h/x.png" as "http:/h/x.png"), so results can be matched to the inputs
        if not given.strip():  # Path("") is the current folder: every image under it was predicted
            raise invalid("images", given, "image files or folders ('.' for the current folder)")
        if given.startswith("~"):
            given = os.path.expanduser(given)
        path = Path(given)
        if path.is_dir():
            skipped: list[dict[str, str]] = []
            found = walk_images(path, skipped, utf8_names=utf8_names)
            left = [s for s in skipped if left_out_by_name(s["reason"])]
            unreadable = [s["path"] for s in skipped
                          if s not in left and s["path"].lower().endswith(IMAGE_EXTENSIONS)]
            out += sorted(found + unreadable)
            not_listed = [s for s in skipped if s["reason"].startswith("cannot ")]
            if empty is not None and not found and not unreadable and not not_listed:  # (said as not read)
                empty.append(str(item))
            if others is not None:
                others += [s["path"] for s in left]
            if unread is not None:
                unread += [f"{s['path']} ({s['reason']})" for s in not_listed]
        else:
            out.append(given)
    return out


def warn_of_left_out(folders: Iterable[str], others: Sequence[str] = (), unread: Sequence[str] = ()) -> None:
    """An empty folder among the images: no row says so, and an empty result read as "nothing predicted". Files
    in the folders that are not images (by their extension) are named too: training lists them as skipped, and
    a prediction silently without them read as a file forgotten. So are the folders that could not be listed
    (a permission, a drive gone): their images were left out without a word."""
    from .notices import warn

    for folder in folders:
        warn(f"the folder {folder!r} holds no image file ({', '.join(IMAGE_EXTENSIONS[:4])} ...)")
    if others:
        # quoted, not repr'd: an escaped name's backslashes were shown doubled
        shown = ", ".join(f"'{os.path.basename(p)}'" for p in others[:3]) + (", ..." if len(others) > 3 else "")
        warn(f"{len(others)} file{'' if len(others) == 1 else 's'} in the folders given left out, not named as "
             f"images or named in other bytes than UTF-8 ({shown}); image extensions: {', '.join(IMAGE_EXTENSIONS)}")
    if unread:
        shown = "; ".join(unread[:3]) + ("; ..." if len(unread) > 3 else "")
        warn(f"{len(unread)} entr{'y' if len(unread) == 1 else 'ies'} in the folders given could not be read, so any "
             f"images in {'it are' if len(unread) == 1 else 'them are'} left out: {shown}")


def is_file_object(item: object) -> bool:
    return callable(getattr(item, "read", None)) and callable(getattr(item, "seek", None))


def gather_inputs(images: Sequence[ImageInput] | ImageInput, grey: bool = False, utf8_names: bool = True
                  ) -> tuple[list[str], list[ImageInput]]:
    """The caller's images as (names, sources), one per image: folders expanded, batches split, every item
    checked before any is decoded (a wrong kind of input is the caller's error, not one image's). `grey`: for a
    run that reads grey images (`tensor_as_array`); utf8_names: as `expand_inputs` takes it."""
    if isinstance(images, np.ndarray) and images.ndim == 1 and (
            images.dtype.kind == "U" or (images.dtype.kind == "O" and len(images)
                                         and all(isinstance(v, (str, os.PathLike)) for v in images))):
        images = images.tolist()  # a column of paths (pandas' df.path.values: object or str dtype), not one image
    described = None
    if isinstance(images, torch.Tensor):
        described = tensor_described(images)
        images = tensor_as_array(images, "images", grey)
    if isinstance(images, np.ndarray) and (images.ndim == 4 or described is not None):
        check_array(images, "images", described)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return [f"images[{j}]" for j in range(len(images))], list(images)
    if isinstance(images, (str, os.PathLike, np.ndarray, Image.Image)) or is_file_object(images):
        images = [images]
    elif isinstance(images, (bytes, bytearray, dict)) or not isinstance(images, Iterable) or _is_table(images):
        raise not_an_image("images", images)
    names: list[str] = []
    sources: list[ImageInput] = []
    for i, item in enumerate(images):
        name = f"images[{i}]"
        if isinstance(item, (str, os.PathLike)):
            empty: list[str] = []
            others: list[str] = []
            unread: list[str] = []
            paths = expand_inputs([item], empty, others, unread, utf8_names=utf8_names)
            warn_of_left_out(empty, others, unread)
            names += paths
            sources += paths
        elif isinstance(item, io.TextIOBase):  # read as text, a PNG's bytes failed as "'utf-8' codec can't decode"
            raise invalid(name, Described(f"a file opened as text ({getattr(item, 'name', '?')})"), IMAGE_KINDS,
                          hint="Open image files in binary mode: open(path, 'rb')")
        elif isinstance(item, Image.Image) or is_file_object(item):
            names.append(getattr(item, "name", None) if isinstance(getattr(item, "name", None), str) else name)
            sources.append(item)
        elif isinstance(item, (np.ndarray, torch.Tensor)):
            described = tensor_described(item) if isinstance(item, torch.Tensor) else None
            item = tensor_as_array(item, name, grey) if isinstance(item, torch.Tensor) else item
            check_array(item, name, described)
            rows = list(item) if item.ndim == 4 else [item]
            names += [f"{name}[{j}]" for j in range(len(rows))] if item.ndim == 4 else [name]
            sources += rows
        else:
            raise not_an_image(name, item)
    return names, sources


def tensor_as_array(tensor: torch.Tensor, name: str, grey: bool = False) -> np.ndarray:
    """A torch image (C x H x W, or N x C x H x W: torchvision's layout, a DataLoader's batch) as the channels-last
    array the numpy path reads; H x W stays as it is. Detached and on the CPU: `.numpy()` of a tensor that needs
    its gradient or lives on a GPU raised, and so did the hint's permute on a batch. A tensor of another layout is
    refused with its own shape (permuted first, an H x W x C tensor was reported as an array of a shape never
    passed). `grey`: the images go to a grey run, for which a 3 x H x W tensor may as well be 3 grey images."""
    channels = tensor.shape[0] if tensor.ndim == 3 else tensor.shape[1] if tensor.ndim == 4 else None
    received = tensor_described(tensor)
    if tensor.layout != torch.strided:
        raise invalid(name, received, IMAGE_KINDS, note=f"a {str(tensor.layout).removeprefix('torch.')} tensor",
                      hint="Pass tensor.to_dense()")
    if tensor.is_meta:
        raise invalid(name, received, IMAGE_KINDS, note="a meta tensor: it holds no values")
    if tensor.ndim not in (2, 3, 4) or channels not in (None, 1, 3, 4):
        last = tensor.shape[-1] if tensor.ndim in (3, 4) else None
        hint = ("A channels-last tensor (H x W x C): pass tensor.permute(2, 0, 1), or its .numpy()"
                if tensor.ndim == 3 and last in (1, 3, 4) else
                "A channels-last batch (N x H x W x C): pass tensor.permute(0, 3, 1, 2), or its .numpy()"
                if tensor.ndim == 4 and last in (1, 3, 4) else
                "A batch of grey images (N x H x W, as MNIST's .data): pass tensor.unsqueeze(1)"
                if tensor.ndim == 3 else None)
        raise invalid(name, received, IMAGE_KINDS, note="not H x W, C x H x W or N x C x H x W with C 1, 3 or 4",
                      hint=hint)
    if grey and tensor.ndim == 3 and channels in (3, 4):
        # torchvision's MNIST(...).data[:3] is 3 grey images; read as one colour image, 3 images gave 1 answer
        raise invalid(name, received, IMAGE_KINDS, note="3 or 4 grey images (N x H x W), or one colour image "
                      "(C x H x W): this run reads grey images, so which one cannot be told",
                      hint="Pass grey images as N x 1 x H x W (tensor.unsqueeze(1)), one colour image as 1 x C x H "
                           "x W (tensor.unsqueeze(0))")
    tensor = tensor.detach().cpu()
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()  # numpy has no bfloat16
    if tensor.ndim == 3:
        tensor = tensor.permute(1, 2, 0)
    elif tensor.ndim == 4:
        tensor = tensor.permute(0, 2, 3, 1)
    return tensor.numpy()


def decodable(source: object, name: str, grey: bool = False) -> object:
    """One image as `Classifier.decode` reads it: a tensor (C x H x W, or H x W) as its checked channels-last
    array; another type than a path, array, PIL image or file object refused by name (an int was a "damaged file
    (AttributeError: ... no attribute 'read')")."""
    if isinstance(source, torch.Tensor):
        described = tensor_described(source)
        source = tensor_as_array(source, name, grey)
        check_array(source, name, described)
        if source.ndim == 4:
            raise invalid(name, described, "one image: decode takes one at a time")
    if not isinstance(source, (str, os.PathLike, np.ndarray, Image.Image)) and not is_file_object(source):
        raise not_an_image(name, source)
    return source


def tensor_described(tensor: torch.Tensor) -> Described:
    """A tensor as an error names it: its own dtype and layout, not those of the array it becomes."""
    shape = "x".join(map(str, tensor.shape)) or "scalar"
    return Described(f"a {str(tensor.dtype).removeprefix('torch.')} tensor of shape {shape}")


def _is_table(images: object) -> bool:
    """A pandas DataFrame: iterated, it gave its column names, read as file names ("path: file not found")."""
    return hasattr(images, "columns") and hasattr(images, "iloc")


def not_an_image(name: str, item: object) -> Exception:
    kind = type(item).__name__
    hint = None
    if _is_table(item):
        hint = "Pass the column of paths: df['path'] (or its .tolist())"
    elif isinstance(item, (bytes, bytearray)):
        hint = "For an encoded image in memory, pass io.BytesIO(data)"
    plain = item is None or isinstance(item, (bool, int, float, complex, bytes, bytearray, dict, np.generic))
    return invalid(name, item if plain else Described(f"an object of type {kind}"), IMAGE_KINDS,
                   note=f"type {kind}" if plain else None, hint=hint)


def check_array(arr: np.ndarray, name: str, received: Described | None = None) -> None:
    """An array that is an image (or, 4-D, a batch of them): shape, dtype, and floats within [0, 1] (a little
    overshoot allowed). `received`: how the error names what the caller passed (a tensor, before its permute)."""
    shape = "x".join(map(str, arr.shape)) or "scalar"
    from_tensor = received is not None  # a tensor's own hints were given before it became this array
    received = received or Described(f"a {arr.dtype} array of shape {shape}")
    image_shape = arr.shape[1:] if arr.ndim == 4 else arr.shape
    if len(image_shape) not in (2, 3) or (len(image_shape) == 3 and image_shape[-1] not in (1, 3, 4)):
        grey_batch = arr.ndim == 3 and not from_tensor
        raise invalid(name, received, IMAGE_KINDS, note="not an image shape",
                      hint="A batch of grey images (N x H x W, as Keras' MNIST or scikit-learn's digits.images): "
                           "pass arr[..., None]" if grey_batch else None)
    if arr.size == 0:
        raise invalid(name, received, IMAGE_KINDS, note="no pixels")
    if np.issubdtype(arr.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:  # "values from nan to nan ... divide by 255" sent the caller to the wrong fix
            raise invalid(name, received, IMAGE_KINDS, note=f"{bad:,} of its {arr.size:,} values are NaN or infinite",
                          hint="Find where the NaNs come from (a division by zero in normalisation, say)")
        low, high = float(np.min(arr)), float(np.max(arr))
        # within FLOAT_UNIT_TOP - 1 of [0, 1]: a resize's ringing (bicubic, antialiased: -0.01..1.01), clipped as
        # a float file's overshoot is
        if low < 1.0 - FLOAT_UNIT_TOP:  # torchvision's Normalize: "divide by 255" was no answer
            raise invalid(name, received, IMAGE_KINDS, note=f"values from {low:g} to {high:g}",
                          hint="Pass pixels in [0, 1] before Normalize (or undo it: x * std + mean), or uint8")
        if high > FLOAT_UNIT_TOP:
            raise invalid(name, received, IMAGE_KINDS, note=f"values from {low:g} to {high:g}",
                          hint="Divide 0..255 values by 255, or pass them as uint8")
    elif np.issubdtype(arr.dtype, np.signedinteger):
        # whole numbers in 0..255 are 8-bit values in a wider type (np.array of a list is int64), as the pixel
        # methods take them; another range has no one reading, so it is refused. Not uint16 and wider: those
        # are 16-bit images, which a file of them is read as (0..65535), and 200 would read bright here
        low, high = int(np.min(arr)), int(np.max(arr))
        if low < 0 or high > 255:
            raise invalid(name, received, IMAGE_KINDS, note=f"values from {low} to {high}",
                          hint="Scale them to 0..255 (uint8) or to [0, 1] floats")
    elif arr.dtype != np.uint8:
        sixteen = np.issubdtype(arr.dtype, np.unsignedinteger)
        raise invalid(name, received, IMAGE_KINDS,
                      hint="A 16-bit image: divide by 65535 for [0, 1] floats" if sixteen else
                      "Convert 0..255 values with .astype(np.uint8); scale other ranges to [0, 1] floats")


def array_to_image(arr: np.ndarray, name: str = "image") -> Image.Image:
    """A checked H x W (x C) array -> a PIL image: uint8 as is, float in [0, 1] scaled to 0..255 and rounded;
    C = 1 is grayscale, 3 RGB, 4 RGBA (composited over white later, as PNG files are)."""
    check_array(arr, name)
    if arr.ndim == 4:
        raise invalid(name, Described(f"a batch of shape {'x'.join(map(str, arr.shape))}"), "one image")
    if np.issubdtype(arr.dtype, np.signedinteger):
        arr = arr.astype(np.uint8)  # checked: within 0..255
    elif arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return Image.fromarray(np.ascontiguousarray(arr))


def refuse_image_folder_as_run(run_dir: str | os.PathLike, look: int = 200) -> None:
    """An image folder given where the run goes (`imgclf predict data/ runs/s1`): said so, with the order, rather
    than "not a run: no model.json". Image files in it or two levels down, among the first `look`."""
    from .records.run_dir import find_run_dirs, is_run_dir, run_path

    folder = run_path(run_dir)
    if folder.is_file() and folder.suffix.lower() == ".onnx":  # `predict` reads an ONNX file with its backend
        # every command that loads a run comes here, and only predict and serve have --backend (explain followed
        # the hint into "No such option: --backend")
        raise bad_path("run", folder, "a run directory containing model.json",
                       "an exported ONNX model: imgclf predict and imgclf serve read it with --backend onnx "
                       "(Python: imgclf.export.load_onnx); the other commands need its run folder")
    # a run, a run's own subfolder (plots/), or a folder of runs: their PNGs are no data set
    if not folder.is_dir() or is_run_dir(folder) or is_run_dir(folder.parent) or find_run_dirs(folder):
        return
    seen = 0
    for pattern in ("*", "*/*", "*/*/*"):
        for path in folder.glob(pattern):
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                raise bad_path("run", folder, "a run directory containing model.json",
                               "an image folder, not a run: give the folder imgclf train wrote; the commands that "
                               "read images take them after the run")
            seen += 1
            if seen >= look:
                return


def check_pixels(pixels: np.ndarray | torch.Tensor, side: int, channels: int, batch_size: int = 1) -> None:
    """Decoded images as the pixel methods take them: (N, side, side, channels) of uint8 values, in batches of
    `batch_size` >= 1. Whole numbers in 0..255 of a signed type pass (uint8 values in a wider type); floats do not
    (cast, [0, 1] would be black), nor 16-bit and wider unsigned ones (16-bit images)."""
    whole_number("batch_size", batch_size, "a whole number >= 1", 1)  # "2" and 1.5: TypeErrors of range()
    if not isinstance(pixels, (np.ndarray, torch.Tensor)):  # a list of arrays: "'list' has no attribute 'shape'"
        raise invalid("pixels", Described(f"an object of type {type(pixels).__name__}"),
                      "a uint8 array or tensor of shape (N, H, W, C), as Classifier.decode makes them",
                      hint="Stack them: np.stack(images)")
    shape = tuple(pixels.shape)
    allowed = f"uint8 images of shape (N, {side}, {side}, {channels}), as Classifier.decode makes them"
    if len(shape) != 4 or shape[1:] != (side, side, channels):
        raise invalid("pixels", Described(f"an array of shape {shape}"), allowed)
    if pixels.dtype in (np.uint8, torch.uint8):
        return
    wide_unsigned = str(pixels.dtype).removeprefix("torch.") in ("uint16", "uint32", "uint64")
    if wide_unsigned:  # a 16-bit image, which a file of it is read as (0..65535): 200 is dark, not 8-bit bright
        raise invalid("pixels", Described(f"an array of {pixels.dtype}"), allowed,
                      note="a 16-bit image: scale it to 0..255 first (x * 255 / 65535, rounded)")
    floating = pixels.is_floating_point() if isinstance(pixels, torch.Tensor) else \
        not np.issubdtype(pixels.dtype, np.integer)
    if floating:
        raise invalid("pixels", Described(f"an array of {pixels.dtype}"), allowed,
                      note="Classifier.predict takes floats in [0, 1]")
    low, high = (int(pixels.min()), int(pixels.max())) if len(pixels) else (0, 0)
    if low < 0 or high > 255:
        raise invalid("pixels", Described(f"an array of {pixels.dtype} with values from {low} to {high}"), allowed)


def _replaceable(path: str) -> bool:
    """Whether an output file a folder walk found among the images is one an earlier command wrote: a figure of
    ours (its PNG carries TEXT_PX_KEY) or not an image at all (a table that -o x.png wrote as text)."""
    from .plotting import TEXT_PX_KEY

    try:
        with Image.open(path) as image:
            return TEXT_PX_KEY in image.info
    except Image.DecompressionBombError:  # a very large photo is still the user's image
        return False
    except (OSError, ValueError):
        return True


def output_among_inputs(argument: str, output: str | os.PathLike, paths: list[str],
                        given: Iterable[object]) -> list[str]:
    """The images to read, less the output file where a folder walk found it (the figure an earlier run wrote
    there, which this one replaces: a second `explain RUN .` explained its own figure, or was refused for it);
    an output that is one of the images `given` by name is refused: -o photo.png overwrote the user's photo with
    the figure or the table. `given`: what the caller passed (names are compared, other inputs pass)."""
    target = os.path.realpath(output)
    named = [os.fspath(g) for g in given if isinstance(g, (str, os.PathLike))]
    if not any(os.path.realpath(os.path.expanduser(g)) == target for g in named):
        found = next((p for p in paths if os.path.realpath(p) == target), None)
        if found is not None and not _replaceable(found):
            # -o folder/photo.png with folder/ given: the user's image was replaced by the table or the figure
            raise bad_path(argument, output, "a file other than the images in the folders given, or a figure "
                           "imgclf wrote there before", f"it is an image in {os.path.dirname(found) or '.'}",
                           hint="Write the result outside the images' folders, or under another name")
        return [p for p in paths if os.path.realpath(p) != target]
    among = next((p for p in paths if os.path.realpath(p) == target), None)
    if among is not None:
        same = os.path.abspath(among) == os.path.abspath(output)
        raise bad_path(argument, output, "a file other than the images given",
                       "it is one of them" if same else f"it is one of them: {among}",
                       hint="Write the result outside the images' folders, or under another name")
    return paths
