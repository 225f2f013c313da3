import warnings

import pytest
import torch

from ddsa_core import cache


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    return tmp_path


def _builder(calls):
    def build():
        calls.append(1)
        return {"w": torch.arange(1000, dtype=torch.float32)}, {"note": "built"}
    return build


def test_miss_then_hit(tmp_cache):
    calls = []
    path = cache.artifact_path("demo", cache.content_key(a=1))
    t1, m1, hit1 = cache.cached(path, _builder(calls))
    t2, m2, hit2 = cache.cached(path, _builder(calls))
    assert (hit1, hit2) == (False, True) and len(calls) == 1
    assert torch.equal(t1["w"], t2["w"]) and m2 == {"note": "built"}


def test_key_depends_on_every_part():
    base = cache.content_key(dataset="mnist", seed=0, lr=0.01)
    assert base == cache.content_key(lr=0.01, seed=0, dataset="mnist")
    assert base != cache.content_key(dataset="mnist", seed=1, lr=0.01)
    assert base != cache.content_key(dataset="mnist", seed=0, lr=0.001)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte"])
def test_corrupt_file_is_rebuilt_never_loaded(tmp_cache, damage):
    calls = []
    path = cache.artifact_path("demo", "k")
    cache.cached(path, _builder(calls))
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[-10] ^= 0xFF  # inside the tensor data: the header still parses
    path.write_bytes(bytes(raw))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tensors, _, hit = cache.cached(path, _builder(calls))
    assert not hit and len(calls) == 2
    assert torch.equal(tensors["w"], torch.arange(1000, dtype=torch.float32))
    assert any("corrupt" in str(w.message) for w in caught)
    assert cache.load(path) is not None  # the rebuilt file is valid


def test_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "x.bin"
    def write(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    with pytest.raises(RuntimeError):
        cache.atomic_write(target, write)
    assert list(tmp_path.iterdir()) == []
