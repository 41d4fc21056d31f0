"""Module (the contract: flat storage, accumulating backward, nesting, state, Sequential)
and checkpoints (atomic npz + json, damage)."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine import NUMERIC, assert_gradients_close, numerical_gradient_arrays
from nn.checkpoint import FORMAT, CheckpointError, checkpoint_paths, load_checkpoint, record_digest, save_checkpoint
from nn.embedding import Embedding
from nn.linear import Linear, linear_loops
from nn.module import Module, Sequential
from nn.normalization import LayerNorm, layer_norm_loops
from nn.optim import SGD
from nn.registry import assert_three_way


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


# An SGD step p - lr g on the flat vector against the same formula on each named array:
# identical float64 operations, so only a last-bit difference could appear.
FLAT_STEP_RTOL = 1e-15
# Two backwards add g + g: exactly 2 g in float64.
ACCUMULATE_RTOL = 0.0


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


def _built(register) -> Module:
    """A Module whose __init__ runs `register(self)`: registration happens during construction."""

    class Probe(Module):
        def __init__(self) -> None:
            super().__init__()
            register(self)

    return Probe()


def test_registration_errors() -> None:
    with pytest.raises(ValueError, match="already registered"):
        _built(lambda m: [m.add_param("w", np.zeros(2)), m.add_param("w", np.zeros(2))])
    with pytest.raises(ValueError, match="'.'"):
        _built(lambda m: m.add_param("a.b", np.zeros(2)))
    with pytest.raises(TypeError):
        _built(lambda m: m.add_module("sub", object()))
    with pytest.raises(ValueError, match="real numbers"):
        _built(lambda m: m.add_param("z", np.array([1 + 2j])))

    class Forgot(Module):
        def __init__(self) -> None:
            self.add_param("w", np.zeros(1))

    with pytest.raises(RuntimeError, match="super"):
        Forgot()


# ------------------------------------------------------------------------------ flat storage
def test_params_and_grads_are_views_into_one_flat_buffer() -> None:
    net = _net()
    P = net.num_parameters()
    assert net.flat_params.shape == net.flat_grads.shape == (P,)
    assert net.flat_params.dtype == net.flat_grads.dtype == np.float64
    # Depth first, registration order: the flat vector is named_parameters() concatenated.
    np.testing.assert_array_equal(net.flat_params, np.concatenate([p.reshape(-1) for p in net.parameters()]))
    for (name, p), (_, g) in zip(net.named_parameters(), net.named_grads()):
        assert np.shares_memory(p, net.flat_params) and np.shares_memory(g, net.flat_grads), name
    # A submodule's flat vectors are its contiguous slice of the root's.
    sub = net.block
    assert np.shares_memory(sub.flat_params, net.flat_params) and sub.flat_params.size == sub.num_parameters()
    np.testing.assert_array_equal(sub.flat_params, np.concatenate([p.reshape(-1) for p in sub.parameters()]))
    net.flat_params[:] = np.arange(P)
    assert net.emb.params["W"][0, 0] == 0.0 and net.ln_f.params["beta"][-1] == P - 1
    net.flat_grads[:] = 2.0
    assert all(np.all(g == 2.0) for _, g in net.named_grads())


def test_a_module_built_alone_moves_into_its_parents_buffer() -> None:
    ln = LayerNorm(3)
    alone = ln.flat_params
    net = Sequential(Linear(2, 3, np.random.default_rng(0)), ln)
    assert not np.shares_memory(ln.params["gamma"], alone)
    assert np.shares_memory(ln.params["gamma"], net.flat_params)
    assert np.shares_memory(ln.flat_params, net.flat_params)
    np.testing.assert_array_equal(ln.params["gamma"], np.ones(3))  # values carried over


def test_an_optimizer_step_on_the_flat_vector_moves_the_named_arrays() -> None:
    net = _net()
    lr = 0.1
    before = net.state_dict()
    rng = np.random.default_rng(5)
    for _, g in net.named_grads():
        g += rng.standard_normal(g.shape)
    grads = {n: g.copy() for n, g in net.named_grads()}
    SGD([(net.flat_params, net.flat_grads)], lr=lr).step()
    for name, p in net.named_parameters():
        np.testing.assert_allclose(p, before[name] - lr * grads[name], rtol=FLAT_STEP_RTOL, atol=0.0, err_msg=name)


def test_flat_vectors_are_never_replaced() -> None:
    net = _net()
    held = net.flat_params
    net.flat_params += 1.0  # in place: rebinding to the same array is allowed
    assert net.flat_params is held
    with pytest.raises(AttributeError, match="never replaced"):
        net.flat_params = held.copy()
    with pytest.raises(AttributeError, match="never replaced"):
        net.flat_grads = np.zeros_like(held)


def test_registering_after_construction_is_refused() -> None:
    net = _net()
    with pytest.raises(RuntimeError, match="after construction"):
        net.add_param("late", np.zeros(2))
    with pytest.raises(RuntimeError, match="after construction"):
        net.block.add_param("late", np.zeros(2))  # a submodule's tree is fixed too
    with pytest.raises(RuntimeError, match="after construction"):
        net.add_module("late", LayerNorm(3))
    with pytest.raises(RuntimeError, match="after construction"):
        Module().add_param("w", np.zeros(1))
    # Inside __init__ the flat buffer does not exist yet, and says so.
    with pytest.raises(RuntimeError, match="outermost __init__"):
        _built(lambda m: [m.add_param("w", np.zeros(2)), m.flat_params])


def test_a_module_cannot_have_two_parents() -> None:
    shared = LayerNorm(3)
    Sequential(shared)
    with pytest.raises(ValueError, match="already registered as '0' in a Sequential") as err:
        Sequential(shared)
    assert "second instance" in str(err.value)
    with pytest.raises(ValueError, match="already registered"):
        ln = LayerNorm(2)
        Sequential(ln, ln)  # twice in one parent is two parents' worth of views too


def test_integer_parameters_become_float64() -> None:
    m = _built(lambda m: m.add_param("w", np.arange(3)))
    assert m.params["w"].dtype == np.float64 and m.grads["w"].dtype == np.float64
    np.testing.assert_array_equal(m.params["w"], [0.0, 1.0, 2.0])


def test_a_module_without_parameters_has_empty_flat_vectors() -> None:
    m = Module()
    assert m.flat_params.shape == (0,) and m.num_parameters() == 0
    m.zero_grad()


# ------------------------------------------------------------------------------ backward, Sequential
def _mlp_seq(seed: int = 0) -> Sequential:
    rng = np.random.default_rng(seed)
    return Sequential(Linear(3, 4, rng), LayerNorm(4), Linear(4, 2, rng))


def test_backward_accumulates_over_two_calls_and_zero_grad_resets() -> None:
    rng = np.random.default_rng(1)
    seq = _mlp_seq()
    x, R = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    seq.forward(x)
    dx1 = seq.backward(R)
    first = seq.flat_grads.copy()
    assert np.any(first != 0.0)
    dx2 = seq.backward(R)
    np.testing.assert_allclose(seq.flat_grads, 2.0 * first, rtol=ACCUMULATE_RTOL, atol=0.0)
    np.testing.assert_array_equal(dx1, dx2)  # dx is returned, not accumulated
    held = seq[0].grads["W"]
    seq.zero_grad()
    assert not seq.flat_grads.any() and held is seq[0].grads["W"] and not held.any()


def test_sequential_three_ways() -> None:
    """Sequential's forward/backward against the pieces' loops forms on the engine (graph)
    and finite differences (numeric), with the parameters as inputs alongside x."""
    rng = np.random.default_rng(2)
    seq = _mlp_seq(seed=3)
    names = [n for n, _ in seq.named_parameters()]
    assert names == ["0.W", "0.b", "1.gamma", "1.beta", "2.W", "2.b"]

    def loops(x, W0, b0, gamma, beta, W2, b2):
        return linear_loops(layer_norm_loops(linear_loops(x, W0, b0), gamma, beta), W2, b2)

    def forward(x, *params):
        seq.load_state_dict(dict(zip(names, params)))
        return seq.forward(x), None

    def backward(dout, _cache):
        seq.zero_grad()
        dx = seq.backward(dout)
        return (dx, *(g.copy() for _, g in seq.named_grads()))

    inputs = {
        "x": rng.standard_normal((3, 3)),
        **{n: p + 0.1 * rng.standard_normal(p.shape) for n, p in seq.named_parameters()},
    }
    assert_three_way(loops, forward, backward, inputs, name="Sequential(Linear, LayerNorm, Linear)")


def test_sequential_flat_gradient_matches_finite_differences() -> None:
    """flat_grads lines up with flat_params: nudge the flat vector itself."""
    rng = np.random.default_rng(4)
    seq = _mlp_seq(seed=5)
    x, R = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    seq.forward(x)
    seq.backward(R)

    def loss(arrays: dict[str, np.ndarray]) -> float:
        saved = seq.flat_params.copy()
        seq.flat_params[:] = arrays["flat"]
        value = float(np.sum(seq.forward(x) * R))
        seq.flat_params[:] = saved
        return value

    numeric = numerical_gradient_arrays(loss, {"flat": seq.flat_params})
    assert_gradients_close(
        {"manual": {"flat": seq.flat_grads}, "numeric": numeric}, pairs=[("manual", "numeric", NUMERIC)]
    )


def test_sequential_refuses_a_gradient_gap_and_bad_arguments() -> None:
    rng = np.random.default_rng(6)
    seq = Sequential(Linear(2, 3, rng), Embedding(4, 3, rng))
    seq[1].forward(np.array([[1]]))  # an embedding mid-chain cannot even take floats; prime its cache
    with pytest.raises(RuntimeError, match="'1' \\(Embedding\\) returns no input gradient"):
        seq.backward(np.ones((1, 1, 3)))
    first = Sequential(Embedding(4, 3, rng), LayerNorm(3))
    out = first.forward(np.array([[0, 3]]))
    assert out.shape == (1, 2, 3) and first.backward(np.ones(out.shape)) is None
    with pytest.raises(ValueError, match="at least one"):
        Sequential()
    with pytest.raises(TypeError):
        Sequential(Linear(2, 2), "relu")  # type: ignore[arg-type]
    assert len(seq) == 2 and isinstance(seq[1], Embedding) and [type(m) for m in seq] == [Linear, Embedding]


def test_module_save_and_load(tmp_path: Path) -> None:
    net = Net(5, 3, seed=2)
    base = net.save(tmp_path / "net", config={"V": 5, "C": 3})
    assert base == tmp_path / "net"
    assert checkpoint_paths(base)[0].is_file() and (tmp_path / "net.json").is_file()
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
    assert record["format"] == FORMAT and record["version"] == 2
    assert record["sha256"] == hashlib.sha256(npz.read_bytes()).hexdigest()
    assert npz.name == f"ck.{record['sha256'][:16]}.npz" and record["npz"] == npz.name  # named by its content
    assert record["record_sha256"] == record_digest(record)
    # A plain numpy reader can open the npz too.
    with np.load(npz, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["a"], ARRAYS["a"])
    # No temporary files left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ck.json", npz.name])


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

    # A crash while replacing the json (after the new npz was written under its own name):
    # the old json still names the old npz, which is whole, so the old checkpoint loads.
    before = sorted(p.name for p in tmp_path.iterdir())
    real_replace = os.replace

    def crash_on_json(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("simulated crash")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_json)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(tmp_path / "ck", ARRAYS, {"step": 5})
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # the new npz and the temp file removed
    arrays, meta = load_checkpoint(tmp_path / "ck")
    assert meta == {"step": 4} and list(arrays) == ["a"]


def _rewrite_json(js: Path, **changes) -> None:
    """An edit by someone who also recomputes the record's own hash (so that what is refused is the edit)."""
    record = json.loads(js.read_text())
    record.update(changes)
    record["record_sha256"] = record_digest(record)
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
    elif kind == "json edited, its hash not":
        js.write_text(js.read_text().replace('"note": "hi"', '"note": "ho"'))
    elif kind == "arrays differ from record":
        np.savez(npz, a=np.zeros(3))
        _rehash(npz, js)
    else:
        raise AssertionError(kind)


DAMAGE = {
    "missing json": ("ck.json", "missing"),
    "missing npz": (".npz", "missing"),
    "truncated npz": (".npz", "sha256"),
    "truncated npz, rehashed": (".npz", "damaged"),
    "npz not a zip": (".npz", "not an npz"),
    "npz is a pickle": (".npz", "not an npz"),
    "truncated json": ("ck.json", "not valid JSON"),
    "json not an object": ("ck.json", "not a twograd checkpoint"),
    "wrong format tag": ("ck.json", "someone-else"),
    "future version": ("ck.json", "version"),
    "hash mismatch": (".npz", "sha256"),
    "arrays differ from record": (".npz", "records"),
    "json edited, its hash not": ("ck.json", "record_sha256"),
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
    record["record_sha256"] = record_digest(record)
    js.write_text(json.dumps(record))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(base)
    assert "object" in str(err.value) and "ck." in str(err.value) and "'a'" in str(err.value)


def test_set_dtype_moves_the_whole_tree_into_float32_buffers() -> None:
    from nn.linear import Linear
    from nn.module import Sequential
    from nn.optim import Adam

    rng = np.random.default_rng(0)
    model = Sequential(Linear(3, 4, rng), Linear(4, 2, rng))
    before = model.state_dict()
    assert model.dtype == np.float64
    model.set_dtype(np.float32)
    assert model.dtype == np.float32 and model.flat_params.dtype == np.float32 and model.flat_grads.dtype == np.float32
    for name, p in model.named_parameters():
        assert p.dtype == np.float32 and np.shares_memory(p, model.flat_params)
        np.testing.assert_array_equal(p, before[name].astype(np.float32))  # rounded, nothing else
    opt = Adam([(model.flat_params, model.flat_grads)], lr=0.1)
    model.flat_grads[...] = 1.0
    opt.step()
    assert model.flat_params.dtype == np.float32 and opt.state["m"]["0"].dtype == np.float32
    with pytest.raises(ValueError, match="call it on the root"):
        model[0].set_dtype(np.float64)
    with pytest.raises(ValueError, match="float32 or float64"):
        model.set_dtype(np.int32)
