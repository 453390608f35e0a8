import numpy as np
import torch

from mer.train.augment import Inputs, draw_epoch, steps_per_epoch, to_device

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def images(n=6, size=32, seed=0):
    return to_device(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8), "cpu")


def test_draws_depend_only_on_seed_and_epoch():
    order, flip, angle = draw_epoch(11, seed=3, epoch=2, batch_size=4, rotate=15)
    assert order.shape == flip.shape == angle.shape == (2, 4)  # 11 samples, batch 4: 2 full batches
    assert len(set(order.flatten().tolist())) == 8 and order.max() < 11
    assert flip.dtype == torch.bool and angle.dtype == torch.float32 and angle.abs().max() <= 15
    again = draw_epoch(11, seed=3, epoch=2, batch_size=4, rotate=15)
    assert all(torch.equal(a, b) for a, b in zip((order, flip, angle), again, strict=True))
    other = draw_epoch(11, seed=3, epoch=3, batch_size=4, rotate=15)
    assert not torch.equal(order, other[0])
    torch.manual_seed(0)
    outside = torch.rand(1)
    torch.manual_seed(0)
    draw_epoch(11, seed=3, epoch=2, batch_size=4)
    assert torch.equal(torch.rand(1), outside)  # the global RNG is untouched
    _, no_flip, no_turn = draw_epoch(11, seed=3, epoch=2, batch_size=4, hflip=False, rotate=0)
    assert not no_flip.any() and not no_turn.any()
    assert steps_per_epoch(3, 4) == 1 and draw_epoch(3, 0, 0, 4)[0].shape == (1, 3)  # fewer than a batch


def test_test_input_is_grayscale_and_normalised():
    x = images(2)
    inputs = Inputs(MEAN, STD)
    out = inputs.test(x)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.float32
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    img = x.double() / 255
    gray = 0.2989 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]
    torch.testing.assert_close(out[:, 0].double(), (gray - 0.5) / 0.25, rtol=0, atol=1e-5)
    color = Inputs(MEAN, STD, grayscale=False).test(x)
    torch.testing.assert_close(color, (x.float() / 255 - 0.5) / 0.25)


def test_flip_and_rotation_per_sample():
    x = images(3)
    inputs = Inputs(MEAN, STD, grayscale=False)
    plain = inputs.test(x)
    none = inputs.train(x, torch.zeros(3, dtype=torch.bool), torch.zeros(3))
    torch.testing.assert_close(none, plain, rtol=0, atol=1e-5)  # identity grid: the same pixels
    flipped = inputs.train(x, torch.tensor([True, False, True]), torch.zeros(3))
    torch.testing.assert_close(flipped[0], plain[0].flip(-1), rtol=0, atol=1e-5)
    torch.testing.assert_close(flipped[1], plain[1], rtol=0, atol=1e-5)
    # 90 degrees counter-clockwise is an exact pixel permutation on a square grid
    turned = inputs.train(x, torch.zeros(3, dtype=torch.bool), torch.tensor([90.0, 0.0, -90.0]))
    torch.testing.assert_close(turned[0], torch.rot90(plain[0], 1, dims=(1, 2)), rtol=0, atol=1e-4)
    torch.testing.assert_close(turned[2], torch.rot90(plain[2], -1, dims=(1, 2)), rtol=0, atol=1e-4)
    torch.testing.assert_close(turned[1], plain[1], rtol=0, atol=1e-5)
    # a small rotation leaves the corners black (0 before normalisation)
    small = inputs.train(x, torch.zeros(3, dtype=torch.bool), torch.full((3,), 15.0))
    assert torch.allclose(small[:, :, 0, 0], torch.tensor(-0.5 / 0.25))
