"""Batch norms folded into the convolutions before them, for inference: the same function in eval mode, one pass
less over every feature map."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import invalid


def fold_batch_norms(model: nn.Module) -> int:
    """Fold every plain BatchNorm2d that directly follows a Conv2d inside an nn.Sequential (with running
    statistics; not a subclass, such as timm's BatchNormAct2d, which also applies an activation) into that
    convolution (a plain, unparametrized Conv2d: a subclass such as timm's StdConv2d recomputes its weights in
    forward, which would undo the fold), whose weights and bias absorb its scale and shift, and put nn.Identity in
    its place. Returns how many were folded.

    Only for a network that predicts from now on: it must be in eval mode, and it cannot train afterwards (the
    batch norms are gone): a folded convolution run in training mode raises, rather than train a different network.
    Convolutions and batch norms joined otherwise (an activation between them, attributes of a custom module)
    are left as they are. With fast_resnet's 8 batch norms folded, fp32 prediction ran 1.26-1.45x faster on 2
    cores of an Intel Xeon (benchmarks/infer_precision.py); model_s, whose batch norms follow an activation, has
    none to fold."""
    if model.training:
        raise ValueError("fold_batch_norms needs a model in eval mode (call model.eval() first): a folded batch norm "
                         "uses its running statistics and can no longer train")
    folded = 0
    for sequence in model.modules():
        if not isinstance(sequence, nn.Sequential):
            continue
        names = list(sequence._modules)
        for conv_name, norm_name in zip(names, names[1:]):
            conv, norm = sequence._modules[conv_name], sequence._modules[norm_name]
            if (type(conv) is nn.Conv2d and not parametrize.is_parametrized(conv) and type(norm) is nn.BatchNorm2d
                    and norm.track_running_stats and norm.running_mean is not None):
                fused = fuse_conv_bn_eval(conv, norm)
                # on each folded convolution, not the network: forward_features and the like bypass its forward
                fused.register_forward_pre_hook(_refuse_training)
                sequence._modules[conv_name] = fused
                sequence._modules[norm_name] = nn.Identity()
                folded += 1
    return folded


def _refuse_training(conv: nn.Module, _inputs: object) -> None:
    if conv.training:
        raise invalid("fold_batch_norm", True, "False for a network that trains",
                      note="its batch norms were folded into its convolutions for prediction, imgclf.load's default",
                      hint="Load the run with imgclf.load(run, fold_batch_norm=False) to train it further")
