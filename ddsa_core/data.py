"""MNIST and CIFAR-10 as the paper splits them, loaded through torchvision.

MNIST: the paper's 50,000 / 10,000 / 10,000 split. ``train`` is the first 50,000 images of the
official training file, ``val`` the last 10,000 (images 50,000-59,999, as Keras'
``validation_split`` takes them), ``test`` the official 10,000.
CIFAR-10: the official 50,000 / 10,000; the paper names no validation split.

When the original CIFAR-10 batches are absent but ``cifar10-jpeg.tar.gz`` is in the data root,
that lossy JPEG copy (quality 75) is decoded instead, and every result says so through
:func:`data_source`. Its labels follow ``ImageFolder``'s rule (sorted class folders), and its
images are interleaved across classes so that "the first N images" is class-balanced.
Decoded tensors are cached as uint8 safetensors.
"""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from . import cache
from .runtime import data_root

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
JPEG_ARCHIVE = "cifar10-jpeg.tar.gz"
SPLITS = {"mnist": ("train", "val", "test"), "cifar10": ("train", "test")}
_MNIST_TRAIN = 50_000
TRAIN_SIZE = {"mnist": _MNIST_TRAIN, "cifar10": 50_000}  # training images as the paper splits each dataset
TEST_SIZE = 10_000  # the test split of both datasets, as the paper uses it


class DataUnavailable(FileNotFoundError):
    """The dataset is neither on disk nor downloadable."""


def data_source(dataset: str) -> str:
    """Which copy of the dataset the loaders use: ``mnist``, ``cifar10`` or ``cifar10-jpeg-q75``."""
    root = data_root()
    if dataset == "cifar10" and not (root / "cifar-10-batches-py").is_dir() and (root / JPEG_ARCHIVE).is_file():
        return "cifar10-jpeg-q75"
    return dataset


def _unavailable(dataset: str, err: Exception) -> DataUnavailable:
    root = data_root()
    where = {
        "mnist": f"{root / 'MNIST' / 'raw'} (train-images-idx3-ubyte and friends)",
        "cifar10": f"{root / 'cifar-10-batches-py'} and {root / JPEG_ARCHIVE}",
    }[dataset]
    return DataUnavailable(
        f"{dataset} not found: looked in {where}, and the download failed ({err}). "
        f"Set DDSA_DATA to a folder holding the data (e.g. DDSA_DATA=../shared/data), "
        f"or run once on a machine with internet to let torchvision download it into {root}."
    )


def _torchvision_arrays(dataset: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images N×C×H×W and int64 labels via torchvision, downloading if needed."""
    cls = torchvision.datasets.MNIST if dataset == "mnist" else torchvision.datasets.CIFAR10
    try:
        ds = cls(root=str(data_root()), train=train, download=True)
    except Exception as err:  # torchvision raises URLError, RuntimeError or OSError offline
        raise _unavailable(dataset, err) from err
    if dataset == "mnist":
        return ds.data.unsqueeze(1).clone(), ds.targets.clone()
    return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets)


def _jpeg_arrays(archive: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode the JPEG copy straight from its archive, labels by ImageFolder's rule (sorted class folders)."""
    split = "train" if train else "test"
    blobs: dict[tuple[str, str], bytes] = {}
    with tarfile.open(archive, "r:gz") as tf:
        for member in tf:
            parts = Path(member.name).parts
            if member.isfile() and len(parts) == 3 and parts[0] == split:
                blobs[(parts[1], parts[2])] = tf.extractfile(member).read()
    classes = sorted({c for c, _ in blobs})
    if tuple(classes) != CIFAR10_CLASSES:
        raise ValueError(f"{archive}: class folders {classes} are not CIFAR-10's {CIFAR10_CLASSES}")
    # Interleave classes (file 0000 of every class, then 0001, ...) so that any prefix is balanced;
    # ImageFolder's own order (class by class) would make "the first 1,000 test images" all airplanes.
    order = sorted(blobs, key=lambda k: (k[1], k[0]))
    images = np.stack([np.asarray(Image.open(io.BytesIO(blobs[k])).convert("RGB")) for k in order])
    labels = torch.tensor([classes.index(c) for c, _ in order])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels


def _raw(dataset: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The full official train or test set as uint8 images and int64 labels, cached once decoded."""
    source = data_source(dataset)
    key = cache.content_key(source=source, train=train, layout="NCHW-uint8-interleaved-v2")
    def build():
        if source == "cifar10-jpeg-q75":
            x, y = _jpeg_arrays(data_root() / JPEG_ARCHIVE, train)
        else:
            x, y = _torchvision_arrays(dataset, train)
        return {"x": x, "y": y.long()}, {"source": source, "train": train}
    tensors, _, _ = cache.cached(cache.artifact_path("data", key), build)
    return tensors["x"], tensors["y"]


def load(dataset: str, split: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images (all when None) of a split as float32 in [0, 1], N×C×H×W, and int64 labels."""
    if dataset not in SPLITS:
        raise ValueError(f"dataset must be one of {tuple(SPLITS)}; got {dataset!r}")
    if split not in SPLITS[dataset]:
        raise ValueError(f"split for {dataset} must be one of {SPLITS[dataset]}; got {split!r}")
    x, y = _raw(dataset, train=split != "test")
    if dataset == "mnist" and split != "test":
        sl = slice(0, _MNIST_TRAIN) if split == "train" else slice(_MNIST_TRAIN, None)
        x, y = x[sl], y[sl]
    if n is not None:
        if n > len(y):
            raise ValueError(f"asked for {n} images of {dataset}/{split}, which has {len(y)}")
        x, y = x[:n], y[:n]
    return x.float().div_(255), y.clone()


#: Keras' ``examples/cifar10_cnn.py`` augmentation: shifts of up to 10 % of each side, horizontal flips.
SHIFT_RANGE = 0.1


def shift_images(x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Each image of ``x`` (N×C×H×W) moved by its own real ``offset`` in pixels (N×2: rows, columns),
    interpolated bilinearly, with the edge pixels repeated outside: scipy's ``ndimage.affine_transform``
    at order 1 with ``mode='nearest'``, which Keras' ``ImageDataGenerator`` applies."""
    n, _, h, w = x.shape
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = 1.0, 1.0
    # affine_grid's (x, y) order is (columns, rows); with align_corners, -1 and 1 are the corner pixels' centres
    theta[:, :, 2] = 2 * offset.flip(1) / torch.tensor([w - 1, h - 1])
    grid = torch.nn.functional.affine_grid(theta.to(x), list(x.shape), align_corners=True)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def shift_flip(x: torch.Tensor, shift: float = SHIFT_RANGE) -> torch.Tensor:
    """Keras' ``ImageDataGenerator(width_shift_range=shift, height_shift_range=shift, horizontal_flip=True)``.

    Each image moves by its own uniform real offset in ``[-shift, shift]`` times its height and
    width (:func:`shift_images`), and half the images are mirrored left to right. torchvision's
    ``RandomAffine`` rounds the offset to whole pixels and fills with a constant, so it is not this.
    Draws from torch's global generator, which :func:`ddsa_core.training.fit` seeds per epoch.
    """
    n, _, h, w = x.shape
    offset = (torch.rand(n, 2) * 2 - 1) * shift * torch.tensor([h, w])
    flip = torch.rand(n) < 0.5
    out = shift_images(x, offset)
    return torch.where(flip.to(x.device)[:, None, None, None], out.flip(-1), out)
