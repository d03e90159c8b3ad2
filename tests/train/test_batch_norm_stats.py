"""BatchNorm statistics recomputed after training: only the layers that trained, the plain mean over the pass."""

import pytest
import torch
from torch import nn

from imgclf.train.batch_norm_stats import MAX_IMAGES, MIN_IMAGES, images_for, norm_counts, recompute_batch_norm


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.Conv2d(4, 4, 1),
                         nn.BatchNorm2d(4))


def test_the_layers_that_trained_get_the_mean_of_the_pass_and_frozen_ones_keep_theirs():
    net = _net()
    frozen = net[1]
    frozen.running_mean.fill_(3.0)
    before = norm_counts(net)
    net.train()
    frozen.eval()  # as a frozen backbone's layer: its count does not grow
    net(torch.randn(8, 2, 5, 5))  # one training step's forward: the last layer's count grows
    net.eval()
    batches = [torch.randn(16, 2, 5, 5) + 2.0, torch.randn(16, 2, 5, 5) + 2.0, torch.randn(1, 2, 5, 5) + 50.0,
               torch.randn(16, 2, 5, 5) - 1.0]
    seen = recompute_batch_norm(net, before, iter(batches), limit=40)
    assert seen == 40  # 16 + 16 + 8 of the fourth batch; the batch of one is skipped (it has no spread)
    assert torch.equal(frozen.running_mean, torch.full((4,), 3.0))
    with torch.no_grad():  # what the last layer reads, batch by batch: its running mean is their mean per image
        reads = [net[:5](x) for x in (batches[0], batches[1], batches[3][:8])]
    expected = (16 * reads[0].mean(dim=(0, 2, 3)) + 16 * reads[1].mean(dim=(0, 2, 3))
                + 8 * reads[2].mean(dim=(0, 2, 3))) / 40
    assert torch.allclose(net[5].running_mean, expected, atol=1e-5)
    assert net[5].momentum == 0.1 and not any(m.training for m in net.modules())  # modes and momentum as given


def test_nothing_changes_without_a_trained_layer_or_a_batch():
    net = _net()
    before = norm_counts(net)
    assert recompute_batch_norm(net, before, iter([torch.randn(4, 2, 3, 3)]), limit=100) == 0  # none trained
    net.train()
    net(torch.randn(4, 2, 3, 3))
    net.eval()
    stats = [t.clone() for t in (net[1].running_mean, net[1].running_var, net[5].running_var)]
    assert recompute_batch_norm(net, before, iter([]), limit=100) == 0  # no batch: what training left stays
    assert all(torch.equal(a, b) for a, b in zip(stats, (net[1].running_mean, net[1].running_var,
                                                        net[5].running_var)))


@pytest.mark.parametrize("train_images, stepped, expected", [
    (240, 1_920, 240),  # a small split is read whole
    (55_000, 2_000_000, MAX_IMAGES),  # a long run: capped
    (20_000, 4_000, MIN_IMAGES),  # a short run: at least the minimum
    (20_000, 20_000, 3_000),  # 15 % of the images stepped through, ~5 % of training's compute
])
def test_the_pass_reads_a_share_of_what_training_stepped_through(train_images, stepped, expected):
    assert images_for(train_images, stepped) == expected
