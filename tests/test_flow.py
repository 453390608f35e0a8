"""Motion inputs: onset -> apex optical flow (mer.preprocess.flow) and the apex - onset difference, through the training
data path (mer.train.data.load_samples, mer.train.augment.Inputs)."""

import cv2
import h5py
import numpy as np
import pytest
import torch
from conftest import CACHE_CLASSES, write_crop_cache

from mer.preprocess.flow import DATASET, flow_input, flow_subject, resize_flow
from mer.train.augment import Inputs, to_device
from mer.train.data import input_datasets, load_samples

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)
SHIFT = (1.5, -0.7)  # px: right and up


def textured(size=96, seed=0):
    """A smooth random texture (uint8 grey), as a face's skin and features give the flow something to hold."""
    noise = np.random.default_rng(seed).random((size, size)).astype(np.float32) * 255
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 2), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def shifted(img, dx, dy):
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, img.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def interior(a, margin=24):
    return a[margin:-margin, margin:-margin]


@pytest.fixture(scope="module")
def translation():
    onset = textured()
    return onset, shifted(onset, *SHIFT), flow_input(onset, shifted(onset, *SHIFT))


def test_flow_of_a_translation_is_that_translation_with_zero_strain(translation):
    _, _, f = translation
    assert f.shape == (96, 96, 3) and f.dtype == np.float32
    assert np.abs(interior(f[..., 0]) - SHIFT[0]).max() < 0.1
    assert np.abs(interior(f[..., 1]) - SHIFT[1]).max() < 0.1
    assert interior(f[..., 2]).max() < 0.02  # a rigid shift does not stretch the face
    # RGB crops (as cached) give the same flow as their grey
    onset, apex, _ = translation
    rgb = flow_input(*(np.dstack([x] * 3) for x in (onset, apex)))
    np.testing.assert_allclose(rgb, f, atol=1e-5)


def test_strain_of_a_stretch():
    # apex = onset scaled by 3% about the centre: u = 0.03 (x - c), so u_x = v_y = 0.03 and strain = 0.03 * sqrt(2)
    onset = textured(seed=1)
    m = cv2.getRotationMatrix2D((47.5, 47.5), 0, 1.03)
    apex = cv2.warpAffine(onset, m, (96, 96), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    s = interior(flow_input(onset, apex)[..., 2])
    assert np.median(s) == pytest.approx(0.03 * np.sqrt(2), rel=0.15)


def batch(f):
    return to_device(f[None], "cpu")


def test_flipping_a_flow_negates_u(translation):
    _, _, f = translation
    inputs = Inputs(MEAN, STD, input="flow")
    x = batch(f)
    torch.testing.assert_close(inputs.test(x), x)  # flow enters in its own units
    flipped = inputs.train(x, torch.tensor([True]), torch.zeros(1))[0]
    torch.testing.assert_close(flipped[0], -x[0, 0].flip(-1), rtol=0, atol=1e-5)
    torch.testing.assert_close(flipped[1:], x[0, 1:].flip(-1), rtol=0, atol=1e-5)
    # and it is the flow of the flipped images: the shift mirrored
    onset, apex, _ = translation
    mirrored = flow_input(onset[:, ::-1].copy(), apex[:, ::-1].copy())
    assert np.abs(interior(flipped[0].numpy()) - interior(mirrored[..., 0])).max() < 0.1


def turn(img, angle):
    """A grey image rotated by Inputs' own rotation, back as uint8."""
    out = Inputs((0, 0, 0), (1, 1, 1), grayscale=False).train(batch(np.dstack([img] * 3)), torch.tensor([False]),
                                                              torch.tensor([angle]))
    return (out[0, 0].numpy() * 255).round().clip(0, 255).astype(np.uint8)


def test_rotating_a_flow_rotates_its_vectors(translation):
    onset, apex, f = translation
    inputs = Inputs(MEAN, STD, input="flow")
    for angle in (90.0, 12.0):
        turned = inputs.train(batch(f), torch.tensor([False]), torch.tensor([angle]))[0].numpy()
        # the flow of the images turned the same way (Inputs' own rotation, on the frames)
        expected = flow_input(turn(onset, angle), turn(apex, angle))
        err = np.abs(interior(np.moveaxis(turned[:2], 0, -1), 30) - interior(expected[..., :2], 30)).max()
        assert err < 0.15, (angle, err)
    # 90 degrees counter-clockwise on screen: a shift right becomes a shift up (u, v) = (v, -u)
    turned = inputs.train(batch(f), torch.tensor([False]), torch.tensor([90.0]))[0].numpy()
    assert np.abs(interior(turned[0]) - SHIFT[1]).max() < 0.1 and np.abs(interior(turned[1]) + SHIFT[0]).max() < 0.1


def test_resizing_a_flow_scales_its_vectors(translation):
    _, _, f = translation
    half = resize_flow(f, 48)
    assert half.shape == (48, 48, 3)
    assert np.abs(interior(half[..., 0], 12) - SHIFT[0] / 2).max() < 0.1
    assert interior(half[..., 2], 12).max() < 0.02


def test_flow_cache_mirrors_the_crop_cache(tmp_path):
    crops = write_crop_cache(tmp_path, subjects=("01",), n=3, size=32)[0]
    out = tmp_path / "flow" / "sub01.h5"
    out.parent.mkdir()
    assert flow_subject(crops, out, "dis") == 3
    with h5py.File(crops, "r") as c, h5py.File(out, "r") as f:
        assert sorted(f) == sorted(c) and f.attrs["flow_method"] == "dis"
        for name in c:
            assert {k: v for k, v in f[name].attrs.items() if not k.startswith("flow_")} == dict(c[name].attrs)
            expected = flow_input(c[name]["onset"][()], c[name]["apex"][()], "dis")
            np.testing.assert_array_equal(f[name][DATASET][()], expected)
    cfg = dict(name="f", input="flow", frame="apex")
    data = load_samples([out], "5class", input_datasets(cfg), CACHE_CLASSES, resize=16)
    assert data.images.shape == (3, 16, 16, 3) and data.images.dtype == np.float32
    with pytest.raises(ValueError, match="frame must be 'apex'"):
        input_datasets({**cfg, "frame": "mid"})


def test_difference_is_the_cached_crops_difference(tmp_path):
    crops = write_crop_cache(tmp_path, subjects=("01", "02"), n=3, size=32)
    rng = np.random.default_rng(5)
    for path in crops:  # the synthetic cache's onset is its apex: give every clip an onset of its own
        with h5py.File(path, "a") as h5:
            for name in h5:
                h5[name]["onset"][...] = rng.integers(0, 256, h5[name]["onset"].shape, dtype=np.uint8)
    data = load_samples(crops, "5class", input_datasets(dict(name="d", input="difference", frame="apex")),
                        CACHE_CLASSES)
    assert data.images.shape == (6, 32, 32, 6) and data.images.dtype == np.uint8
    with h5py.File(crops[0], "r") as h5:
        first = sorted(h5)[0]
        apex, onset = h5[first]["apex"][()].astype(np.float64), h5[first]["onset"][()].astype(np.float64)
    gray = np.array([0.2989, 0.587, 0.114])
    expected = ((apex - onset) / 255) @ gray / STD[0]
    out = Inputs(MEAN, STD, input="difference").test(to_device(data.images[:1], "cpu"))[0]
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(out[1].numpy(), expected * STD[0] / STD[1], atol=1e-5)  # mean 0, each channel's std
    # augmenting the pair is augmenting their difference (the same flip and rotation for both)
    pair = to_device(data.images[:2], "cpu")
    flip, angle = torch.tensor([True, False]), torch.tensor([7.0, -11.0])
    apex_only = Inputs((0, 0, 0), (1, 1, 1)).train(pair[:, :3], flip, angle)
    onset_only = Inputs((0, 0, 0), (1, 1, 1)).train(pair[:, 3:], flip, angle)
    both = Inputs((0, 0, 0), (1, 1, 1), input="difference").train(pair, flip, angle)
    torch.testing.assert_close(both, apex_only - onset_only, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="other than the onset"):
        input_datasets(dict(name="d", input="difference", frame="onset"))
