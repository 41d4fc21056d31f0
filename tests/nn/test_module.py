"""Module (named parameters, nesting, state) and checkpoints (atomic npz + json, damage)."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nn.checkpoint import FORMAT, CheckpointError, checkpoint_paths, load_checkpoint, save_checkpoint
from nn.embedding import Embedding
from nn.module import Module
from nn.normalization import LayerNorm


class Block(Module):
    def __init__(self, C: int, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.add_param("W", rng.standard_normal((C, C)))
        self.ln1 = self.add_module("ln1", LayerNorm(C))
        self.add_param("b", np.zeros(C))


class Net(Module):
    def __init__(self, V: int, C: int, seed: int = 0) -> None:
        super().__init__()
        self.emb = self.add_module("emb", Embedding(V, C, np.random.default_rng(seed)))
        self.block = self.add_module("block", Block(C, seed + 1))
        self.ln_f = self.add_module("ln_f", LayerNorm(C))


def _net() -> Net:
    return Net(V=5, C=3)


# ------------------------------------------------------------------------------ Module
def test_named_parameters_dotted_and_in_registration_order() -> None:
    net = _net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["emb.W", "block.W", "block.ln1.gamma", "block.ln1.beta", "block.b", "ln_f.gamma", "ln_f.beta"]
    assert [n for n, _ in net.named_grads()] == names
    assert net.num_parameters() == 5 * 3 + 9 + 3 + 3 + 3 + 3 + 3
    # The arrays themselves, not copies: an in-place change is seen by the module.
    dict(net.named_parameters())["block.ln1.gamma"][0] = 7.0
    assert net.block.ln1.params["gamma"][0] == 7.0
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert all(g.shape == p.shape for (_, p), (_, g) in zip(net.named_parameters(), net.named_grads()))


def test_zero_grad_in_place() -> None:
    net = _net()
    held = net.block.grads["W"]
    for _, g in net.named_grads():
        g += 1.5
    net.zero_grad()
    assert held is net.block.grads["W"]
    assert all(np.all(g == 0.0) for _, g in net.named_grads())


def test_state_dict_copies_and_round_trips() -> None:
    a, b = Net(5, 3, seed=0), Net(5, 3, seed=9)
    state = a.state_dict()
    state["emb.W"][0, 0] = 123.0
    assert a.emb.params["W"][0, 0] != 123.0  # a copy
    held = b.emb.params["W"]
    b.load_state_dict(a.state_dict())
    assert held is b.emb.params["W"]  # loaded in place
    for (n1, p1), (n2, p2) in zip(a.named_parameters(), b.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p1, p2)


def test_load_state_dict_names_all_problems_at_once() -> None:
    net = _net()
    before = net.state_dict()
    state = net.state_dict()
    del state["block.b"]
    state["block.extra"] = np.zeros(2)
    state["ln_f.gamma"] = np.zeros(4)
    state["emb.W"] = state["emb.W"] + 1.0  # valid: must not be applied when others fail
    with pytest.raises(ValueError) as err:
        net.load_state_dict(state)
    msg = str(err.value)
    assert "block.b" in msg and "block.extra" in msg and "ln_f.gamma" in msg and "(3,)" in msg and "(4,)" in msg
    for n, p in net.named_parameters():
        np.testing.assert_array_equal(p, before[n])


def test_registration_errors() -> None:
    m = Module()
    m.add_param("w", np.zeros(2))
    with pytest.raises(ValueError, match="already registered"):
        m.add_param("w", np.zeros(2))
    with pytest.raises(ValueError, match="'.'"):
        m.add_param("a.b", np.zeros(2))
    with pytest.raises(TypeError):
        m.add_module("sub", object())  # type: ignore[arg-type]

    class Forgot(Module):
        def __init__(self) -> None:
            self.add_param("w", np.zeros(1))

    with pytest.raises(RuntimeError, match="super"):
        Forgot()


def test_module_save_and_load(tmp_path: Path) -> None:
    net = Net(5, 3, seed=2)
    base = net.save(tmp_path / "net", config={"V": 5, "C": 3})
    assert base == tmp_path / "net"
    assert (tmp_path / "net.npz").is_file() and (tmp_path / "net.json").is_file()
    loaded = Net.load(tmp_path / "net.json")
    for (n1, p1), (n2, p2) in zip(net.named_parameters(), loaded.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p1, p2)
    other = Net(5, 3, seed=7)
    meta = other.load_weights(base)
    assert meta["config"] == {"V": 5, "C": 3} and meta["module"] == "Net"
    np.testing.assert_array_equal(other.emb.params["W"], net.emb.params["W"])
    with pytest.raises(ValueError, match="Net"):
        LayerNorm.load(base)


def test_module_load_without_config_says_what_to_do(tmp_path: Path) -> None:
    ln = LayerNorm(4)
    ln.save(tmp_path / "ln")
    with pytest.raises(ValueError, match="load_weights"):
        LayerNorm.load(tmp_path / "ln")
    fresh = LayerNorm(4)
    fresh.load_weights(tmp_path / "ln")


# ------------------------------------------------------------------------------ checkpoint files
ARRAYS = {"a": np.arange(6.0).reshape(2, 3), "b.c": np.array([1, 2, 3], dtype=np.int64), "file": np.ones(1)}
META = {"step": 3, "note": "hi"}


def test_checkpoint_round_trip_and_json_record(tmp_path: Path) -> None:
    base = save_checkpoint(tmp_path / "ck", ARRAYS, META)
    arrays, meta = load_checkpoint(base)
    assert meta == META
    assert set(arrays) == set(ARRAYS)
    for k in ARRAYS:
        np.testing.assert_array_equal(arrays[k], ARRAYS[k])
        assert arrays[k].dtype == ARRAYS[k].dtype
    npz, js = checkpoint_paths(base)
    record = json.loads(js.read_text())
    assert record["format"] == FORMAT and record["version"] == 1
    assert record["sha256"] == hashlib.sha256(npz.read_bytes()).hexdigest()
    # A plain numpy reader can open the npz too.
    with np.load(npz, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["a"], ARRAYS["a"])
    # No temporary files left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.json", "ck.npz"]


def test_checkpoint_paths_accept_either_suffix(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "run.v1", ARRAYS, META)
    for p in ("run.v1", "run.v1.npz", "run.v1.json"):
        _, meta = load_checkpoint(tmp_path / p)
        assert meta == META


def test_save_refuses_object_arrays_and_bad_meta(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="object"):
        save_checkpoint(tmp_path / "x", {"o": np.array([1, "a"], dtype=object)}, {})
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "y", ARRAYS, {"bad": object()})
    assert list(tmp_path.iterdir()) == []  # nothing written for either


def test_save_overwrites_atomically_and_cleans_up_on_failure(tmp_path: Path, monkeypatch) -> None:
    save_checkpoint(tmp_path / "ck", ARRAYS, META)
    save_checkpoint(tmp_path / "ck", {"a": np.zeros(2)}, {"step": 4})
    arrays, meta = load_checkpoint(tmp_path / "ck")
    assert meta == {"step": 4} and list(arrays) == ["a"]

    # A crash while replacing the json (after the npz was replaced): the old json now
    # points to a different npz, and loading says so instead of mixing the two.
    real_replace = os.replace

    def crash_on_json(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("simulated crash")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_json)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(tmp_path / "ck", ARRAYS, {"step": 5})
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.json", "ck.npz"]  # temp file removed
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(tmp_path / "ck")


def _rewrite_json(js: Path, **changes) -> None:
    record = json.loads(js.read_text())
    record.update(changes)
    js.write_text(json.dumps(record))


def _rehash(npz: Path, js: Path) -> None:
    _rewrite_json(js, sha256=hashlib.sha256(npz.read_bytes()).hexdigest())


def _damage(kind: str, npz: Path, js: Path) -> None:
    if kind == "missing json":
        js.unlink()
    elif kind == "missing npz":
        npz.unlink()
    elif kind == "truncated npz":
        npz.write_bytes(npz.read_bytes()[:50])
    elif kind == "truncated npz, rehashed":
        npz.write_bytes(npz.read_bytes()[:-60])
        _rehash(npz, js)
    elif kind == "npz not a zip":
        npz.write_bytes(b"definitely not a zip archive")
        _rehash(npz, js)
    elif kind == "npz is a pickle":
        npz.write_bytes(b"\x80\x04\x95" + b"\x00" * 20)  # a pickle stream's opening bytes
        _rehash(npz, js)
    elif kind == "truncated json":
        js.write_text(js.read_text()[:30])
    elif kind == "json not an object":
        js.write_text("[1, 2]")
    elif kind == "wrong format tag":
        _rewrite_json(js, format="someone-else")
    elif kind == "future version":
        _rewrite_json(js, version=99)
    elif kind == "hash mismatch":
        np.savez(npz, a=np.zeros(3))  # a valid npz, but not the one the json recorded
    elif kind == "arrays differ from record":
        np.savez(npz, a=np.zeros(3))
        _rehash(npz, js)
    else:
        raise AssertionError(kind)


DAMAGE = {
    "missing json": ("ck.json", "missing"),
    "missing npz": ("ck.npz", "missing"),
    "truncated npz": ("ck.npz", "sha256"),
    "truncated npz, rehashed": ("ck.npz", "damaged"),
    "npz not a zip": ("ck.npz", "not an npz"),
    "npz is a pickle": ("ck.npz", "not an npz"),
    "truncated json": ("ck.json", "not valid JSON"),
    "json not an object": ("ck.json", "not a twograd checkpoint"),
    "wrong format tag": ("ck.json", "someone-else"),
    "future version": ("ck.json", "version"),
    "hash mismatch": ("ck.npz", "sha256"),
    "arrays differ from record": ("ck.npz", "records"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_checkpoint_raises_one_clear_error(kind: str, tmp_path: Path) -> None:
    base = save_checkpoint(tmp_path / "ck", ARRAYS, META)
    npz, js = checkpoint_paths(base)
    _damage(kind, npz, js)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(base)
    fname, what = DAMAGE[kind]
    msg = str(err.value)
    assert fname in msg and what in msg, msg
    assert isinstance(err.value, ValueError)
    # `raise ... from None`: no numpy/zipfile traceback chained under ours.
    assert err.value.__cause__ is None
    assert err.value.__context__ is None or err.value.__suppress_context__


def test_object_dtype_npz_is_refused_not_unpickled(tmp_path: Path) -> None:
    base = save_checkpoint(tmp_path / "ck", {"a": np.zeros(2)}, META)
    npz, js = checkpoint_paths(base)
    # Someone swaps in an npz with a pickled object array and fixes up the json to match.
    np.savez(npz, a=np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(npz) as zf:
        assert zf.namelist() == ["a.npy"]
    record = json.loads(js.read_text())
    record["sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()
    record["arrays"] = {"a": {"shape": [2], "dtype": "|O"}}
    js.write_text(json.dumps(record))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(base)
    assert "object" in str(err.value) and "ck.npz" in str(err.value) and "'a'" in str(err.value)
