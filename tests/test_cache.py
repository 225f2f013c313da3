import multiprocessing
import os
import warnings
from pathlib import Path

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


def test_a_batchnorm_state_dict_round_trips(tmp_cache):
    # BatchNorm's num_batches_tracked is a 0-d int64 tensor; the CIFAR-10 denoiser has BatchNorm
    state = torch.nn.BatchNorm2d(3).state_dict()
    path = cache.artifact_path("demo", cache.content_key(bn=1))
    cache.save(path, state, {})
    tensors, _ = cache.read_artifact(path)
    assert tensors["num_batches_tracked"].dim() == 0
    assert all(torch.equal(tensors[k], v) for k, v in state.items())
    assert cache._digest({"t": torch.tensor(7)}) != cache._digest({"t": torch.tensor(8)})


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
    assert cache.read_artifact(path) is not None  # the rebuilt file is valid


def test_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "x.bin"
    def write(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    with pytest.raises(RuntimeError):
        cache.atomic_write(target, write)
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_the_usual_permissions(tmp_path):
    """Not mkstemp's 0600: a recorded result must be readable by whoever reads the checkout."""
    for mask, mode in ((0o022, 0o644), (0o027, 0o640)):
        old = os.umask(mask)
        try:
            cache.atomic_write(tmp_path / f"{mask:o}.json", lambda tmp: tmp.write_text("{}"))
        finally:
            os.umask(old)
        assert (tmp_path / f"{mask:o}.json").stat().st_mode & 0o777 == mode


def _write_many(path: str, writer: int, rounds: int, start) -> None:
    """One of two processes saving the same artifact (same tensors, its own metadata) ``rounds`` times."""
    start.wait()
    tensors = {"w": torch.arange(1_000_000, dtype=torch.float32)}
    for i in range(rounds):
        cache.save(Path(path), tensors, {"writer": writer, "round": i})


def test_two_writers_at_once_leave_a_valid_file(tmp_path):
    """Two processes saving the same key at once; a reader meanwhile never sees a half-written file."""
    ctx = multiprocessing.get_context("spawn")
    path, rounds = tmp_path / "kind" / "key.safetensors", 15
    start = ctx.Barrier(3)
    writers = [ctx.Process(target=_write_many, args=(str(path), w, rounds, start)) for w in (0, 1)]
    for p in writers:
        p.start()
    start.wait()
    seen = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cache.read_artifact warns (and deletes the file) when it finds a corrupt one
        while any(p.is_alive() for p in writers):
            hit = cache.read_artifact(path)
            seen += hit is not None
    for p in writers:
        p.join(60)
        assert p.exitcode == 0
    tensors, meta = cache.read_artifact(path)  # load() checks the SHA-256 of the tensors against the header
    assert torch.equal(tensors["w"], torch.arange(1_000_000, dtype=torch.float32))
    assert meta["writer"] in (0, 1) and meta["round"] == rounds - 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    assert seen > 0  # the reader did race the writers
