import os
import tarfile
from pathlib import Path

import pytest
import torch

from ddsa_core import data


@pytest.mark.parametrize("split,n", [("train", 50_000), ("val", 10_000), ("test", 10_000)])
def test_mnist_split_sizes_and_range(split, n):
    x, y = data.load("mnist", split)
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert x.min() == 0 and x.max() == 1
    assert set(y.unique().tolist()) == set(range(10))


def test_mnist_validation_is_the_last_10000_training_images():
    import torchvision

    raw = torchvision.datasets.MNIST(os.environ["DDSA_DATA"], train=True, download=False)
    xv, yv = data.load("mnist", "val")
    assert torch.equal(yv, raw.targets[50_000:])
    assert torch.equal((xv[:5, 0] * 255).round().to(torch.uint8), raw.data[50_000:50_005])
    assert data.load("mnist", "test", 3)[1].tolist() == [7, 2, 1]  # the official test file's first labels


def test_cifar10_jpeg_copy_shapes_labels_and_source():
    assert data.data_source("cifar10") == "cifar10-jpeg-q75"
    x, y = data.load("cifar10", "test")
    assert x.shape == (10_000, 3, 32, 32) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    assert torch.equal(y.bincount(), torch.full((10,), 1000))
    assert data.load("cifar10", "train")[0].shape == (50_000, 3, 32, 32)


def test_cifar10_label_order_is_imagefolder_order():
    """Sorted class folders give CIFAR-10's own label order (airplane=0 ... truck=9)."""
    assert tuple(sorted(data.CIFAR10_CLASSES)) == data.CIFAR10_CLASSES


def test_cifar10_prefix_is_class_balanced():
    _, y = data.load("cifar10", "test", 100)
    assert torch.equal(y.bincount(minlength=10), torch.full((10,), 10))


def test_jpeg_decoding_matches_pil(tmp_path):
    """Our archive decoder gives the same pixels as PIL on the same file, under the label ImageFolder gives."""
    from PIL import Image
    import numpy as np

    with tarfile.open(Path(os.environ["DDSA_DATA"]) / data.JPEG_ARCHIVE) as tf:
        tf.extract("test/cat/0000.jpg", tmp_path, filter="data")
    pil = torch.from_numpy(np.array(Image.open(tmp_path / "test/cat/0000.jpg").convert("RGB"))).permute(2, 0, 1)
    x, y = data.load("cifar10", "test", 10)
    cat = data.CIFAR10_CLASSES.index("cat")
    assert y[cat] == 3
    assert (x[cat] * 255).round().to(torch.uint8).sub(pil).abs().max() <= 1  # libjpeg IDCT rounding


def test_bad_split_and_size():
    with pytest.raises(ValueError, match="split for cifar10 must be one of"):
        data.load("cifar10", "val")
    with pytest.raises(ValueError, match="dataset must be one of"):
        data.load("svhn", "test")
    with pytest.raises(ValueError, match="asked for 20000 images of mnist/test"):
        data.load("mnist", "test", 20_000)


def test_missing_data_error_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(data.DataUnavailable) as err:
        data.load("mnist", "test")
    msg = str(err.value)
    assert str(tmp_path / "nothing" / "MNIST" / "raw") in msg and "DDSA_DATA" in msg


def test_decoded_tensors_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    data.load("mnist", "test", 5)
    files = list((tmp_path / "data").glob("*.safetensors"))
    assert len(files) == 1
    monkeypatch.setattr(data, "_torchvision_arrays", lambda *a: pytest.fail("decoded again"))
    assert data.load("mnist", "test", 5)[1].tolist() == [7, 2, 1, 0, 4]


def test_shift_images_is_scipys_affine_transform_at_order_1_with_nearest_fill():
    # Keras' ImageDataGenerator shifts with scipy.ndimage.affine_transform(order=1, mode='nearest')
    from scipy import ndimage

    torch.manual_seed(0)
    x = torch.rand(3, 2, 8, 10, dtype=torch.float64)
    offset = torch.tensor([[0.4, -2.7], [-0.8, 1.0], [3.3, 0.0]], dtype=torch.float64)
    ours = data.shift_images(x, offset)
    for i in range(3):
        for c in range(2):
            ref = ndimage.affine_transform(x[i, c].numpy(), [1.0, 1.0], offset=offset[i].tolist(), order=1, mode="nearest")
            assert torch.allclose(ours[i, c], torch.from_numpy(ref), atol=1e-10)


def test_shift_flip_repeats_the_edge_where_torchvisions_random_affine_fills_a_constant():
    from torchvision.transforms import v2

    torch.manual_seed(0)
    ones = torch.ones(64, 3, 32, 32)
    assert torch.allclose(data.shift_flip(ones), ones)  # Keras' fill_mode='nearest': nothing new enters
    shift = v2.RandomAffine(degrees=0, translate=(data.SHIFT_RANGE,) * 2)  # one draw per call, whole pixels
    assert any((shift(ones[:1]) == 0).any() for _ in range(20))  # torchvision fills the uncovered border with 0


def test_shift_flip_moves_at_most_a_tenth_and_mirrors_about_half():
    torch.manual_seed(1)
    ramp = torch.arange(32.0).expand(2000, 1, 32, 32)  # column index: a shift and a mirror show in row 0
    out = data.shift_flip(ramp)[:, 0, 0]
    mirrored = out[:, 0] > out[:, -1]
    assert 0.45 < mirrored.float().mean() < 0.55
    plain = torch.where(mirrored[:, None], out.flip(-1), out)
    shift = plain[:, 16] - 16  # the middle column's new value is its offset
    assert shift.abs().max() <= 0.1 * 32 + 1e-5 and shift.abs().max() > 0.09 * 32
