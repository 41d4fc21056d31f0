"""The GPT (models/zoo/gpt.py): the Module against the composed pieces, torch's logits, float32, errors."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError
from models.zoo.gpt import GPT, SMALL, GPTConfig, count_parameters, gpt_backward, gpt_forward, gpt_param_names
from nn.losses import IGNORE_INDEX

#: the Module calls the same functions on the same arrays: bit-identical.
SAME = 0.0
#: torch computes the same float64 sums in another order: about 1e-15 relative, 1e-10 asked.
TORCH_RTOL = 1e-10
#: float32 against float64 on the same weights: float32's 24-bit mantissa through two blocks.
FLOAT32_RTOL = 1e-4


def batch(config: GPTConfig, B: int = 3, T: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, config.vocab_size, size=(B, T))
    targets = rng.integers(0, config.vocab_size, size=(B, T))
    targets[0, 0] = IGNORE_INDEX
    return idx, targets


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"tied": False, "norm": "rms", "bias": False, "activation": "relu"},
        {"positions": "sinusoidal", "scale_embedding": True},
    ],
)
def test_the_module_is_the_composed_manual_pair_and_accumulates(overrides) -> None:
    model = GPT(SMALL, **overrides)
    assert model.num_parameters() == count_parameters(model.config)
    idx, targets = batch(model.config)
    loss, cache = gpt_forward(*model.param_list(), idx=idx, targets=targets, **model.config.static())
    grads = gpt_backward(np.ones(()), cache)
    # the composed method is the same calls on the same arrays (the fused step that
    # loss_and_grad runs is checked against it in test_gpt_fast.py)
    first = model.loss_and_grad_composed(idx, targets)
    assert first == float(loss)
    for name, g in zip(model.names, grads):
        np.testing.assert_allclose(dict(model.named_grads())[name], g, rtol=SAME, atol=SAME)
    model.loss_and_grad_composed(idx, targets)  # a second call adds the same again
    for name, g in zip(model.names, grads):
        np.testing.assert_allclose(dict(model.named_grads())[name], 2 * g, rtol=SAME, atol=SAME)
    assert model.logits(idx).shape == (3, 4, model.config.vocab_size)
    np.testing.assert_allclose(model.logits(idx), cache.logits, rtol=1e-14, atol=1e-14)


@pytest.mark.slow
def test_logits_and_loss_match_torch_with_the_weights_copied_in() -> None:
    torch = pytest.importorskip("torch")
    from models.zoo.gpt import _gpt_torch

    model = GPT(SMALL, tied=False)
    idx, targets = batch(model.config)
    tensors = [torch.tensor(p, requires_grad=True) for p in model.param_list()]
    t_loss = _gpt_torch(torch, *tensors, idx=torch.tensor(idx), targets=torch.tensor(targets), **model.config.static())
    t_loss.backward()
    loss = model.loss_and_grad(idx, targets)
    assert loss == pytest.approx(t_loss.item(), rel=TORCH_RTOL)
    for name, t in zip(model.names, tensors):
        np.testing.assert_allclose(
            dict(model.named_grads())[name], t.grad.numpy(), rtol=TORCH_RTOL, atol=1e-13, err_msg=name
        )
    # logits, from torch's own modules end to end
    with torch.no_grad():
        p = dict(zip(model.names, (torch.tensor(a) for a in model.param_list())))
        from models.zoo.gpt import _block_kwargs
        from nn.transformer_block import _block_torch, block_param_names

        x = p["wte"][torch.tensor(idx)] + p["wpe"][: idx.shape[1]]
        for layer in range(model.config.n_layers):
            x = _block_torch(
                torch, x, *(p[f"h{layer}.{n}"] for n in block_param_names()), **_block_kwargs(**model.config.static())
            )
        h = torch.nn.functional.layer_norm(x, (8,), p["norm_f.gamma"], p["norm_f.beta"], eps=model.config.eps)
        t_logits = (h @ p["head"]).numpy()
    np.testing.assert_allclose(model.logits(idx), t_logits, rtol=TORCH_RTOL, atol=1e-13)


def test_float32_is_the_same_code_in_float32() -> None:
    m64 = GPT(SMALL)
    m32 = GPT(SMALL, dtype="float32")
    assert m32.flat_params.dtype == np.float32
    idx, targets = batch(SMALL)
    l64, l32 = m64.loss_and_grad(idx, targets), m32.loss_and_grad(idx, targets)
    assert m32.flat_grads.dtype == np.float32 and m32.logits(idx).dtype == np.float32
    assert l32 == pytest.approx(l64, rel=FLOAT32_RTOL)
    np.testing.assert_allclose(m32.flat_grads, m64.flat_grads, rtol=1e-2, atol=1e-4)  # gradients: float32 rounding


def test_bad_input_is_one_clear_error() -> None:
    model = GPT(SMALL)
    with pytest.raises(InputError, match="more than the model's context of 4"):
        model.logits(np.zeros((1, 5), dtype=np.int64))
    with pytest.raises(InputError, match="integer token ids"):
        model.logits(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="ids"):
        model.logits(np.full((1, 3), 7))  # outside the vocabulary of 7
    with pytest.raises(InputError, match="not a multiple of n_heads"):
        GPT(SMALL, d_model=9)
    with pytest.raises(InputError, match="unknown 'batch'"):
        GPT(SMALL, norm="batch")


def test_parameter_names_follow_the_config() -> None:
    assert gpt_param_names(1, norm="rms", bias=False, positions="sinusoidal", tied=False) == [
        "wte",
        "h0.Wq",
        "h0.Wk",
        "h0.Wv",
        "h0.Wo",
        "h0.W1",
        "h0.W2",
        "h0.gamma1",
        "h0.gamma2",
        "norm_f.gamma",
        "head",
    ]


def test_attention_maps_are_causal_distributions_per_layer_and_head() -> None:
    model = GPT(SMALL)
    idx, _ = batch(SMALL, B=2, T=4)
    maps = model.attention_maps(idx)
    assert len(maps) == SMALL.n_layers and all(m.shape == (2, SMALL.n_heads, 4, 4) for m in maps)
    for m in maps:
        np.testing.assert_allclose(m.sum(axis=-1), 1.0, rtol=1e-12)
        assert np.all(np.triu(m, k=1) == 0.0)  # no query sees a later key


def test_attention_heatmaps_one_file_per_block(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from models.zoo.gpt import save_attention_maps

    paths = save_attention_maps(GPT(SMALL), np.array([[1, 2, 3, 4]]), ["a", "b", "c", "d"], tmp_path / "pics")
    assert [p.name for p in paths] == ["attention_layer0.png", "attention_layer1.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
    with pytest.raises(InputError, match="one sequence"):
        save_attention_maps(GPT(SMALL), np.array([[1, 2]]), ["a"], tmp_path)


def test_checkpoint_names_are_the_dotted_parameter_names_and_round_trip(tmp_path) -> None:
    model = GPT(SMALL, tied=False)
    assert [n for n, _ in model.named_parameters()] == model.names  # what the README's schema lists
    model.flat_params[...] += 0.5
    loaded = GPT.load(model.save(tmp_path / "gpt"))
    assert loaded.config == model.config and np.array_equal(loaded.flat_params, model.flat_params)


def test_the_graph_path_gives_the_manual_gradient() -> None:
    """The micro shape (1 block, RMSNorm, relu, no biases, untied): engine.Value graph vs manual."""
    config = GPTConfig(
        **{**SMALL.to_dict(), "n_layers": 1, "norm": "rms", "activation": "relu", "bias": False, "tied": False}
    )
    manual, graph = GPT(config), GPT(config)
    idx, targets = batch(config, B=1, T=4)
    assert manual.loss_and_grad(idx, targets) == pytest.approx(graph.loss_and_grad_graph(idx, targets), rel=1e-12)
    np.testing.assert_allclose(graph.flat_grads, manual.flat_grads, rtol=1e-9, atol=1e-12)  # float64 rounding only


@pytest.mark.parametrize("norm", ["rms", "layer"])
@pytest.mark.parametrize(
    "norm_gain,embed_norm,final_norm",
    [(False, True, False), (True, True, True), (False, False, True), (True, False, False)],
)
def test_the_one_file_norm_options_shape_the_parameters_and_keep_the_weights(
    norm, norm_gain, embed_norm, final_norm
) -> None:
    base = GPTConfig(vocab_size=7, context=4, d_model=8, n_heads=2, n_layers=2, norm=norm)
    config = GPTConfig(**{**base.to_dict(), "norm_gain": norm_gain, "embed_norm": embed_norm, "final_norm": final_norm})
    model, plain = GPT(config), GPT(base)
    assert model.num_parameters() == count_parameters(config)
    assert any(n.startswith("norm_e.") for n in model.names) == (embed_norm and (norm_gain or norm == "layer"))
    assert any(n.startswith("norm_f.") for n in model.names) == (final_norm and (norm_gain or norm == "layer"))
    assert any("gamma" in n for n in model.names) == norm_gain
    shared = dict(plain.named_parameters())
    for name, array in model.named_parameters():  # the same draws: the options only add or drop norms
        if name in shared:
            assert np.array_equal(array, shared[name]), name
    idx = np.array([[1, 2, 3, 0]])
    model.flat_grads.fill(0.0)
    loss = model.loss_and_grad(idx, idx)  # the composed pieces for these options
    assert np.isfinite(loss) and np.isfinite(model.flat_grads).all()


def test_a_config_saved_before_the_norm_options_loads_as_gpt2s_norms() -> None:
    old = {k: v for k, v in GPTConfig().to_dict().items() if k not in ("norm_gain", "embed_norm", "final_norm")}
    config = GPTConfig(**old)
    assert (config.norm_gain, config.embed_norm, config.final_norm) == (True, False, True)
    with pytest.raises(InputError, match="GPTConfig.embed_norm must be true or false"):
        GPTConfig(embed_norm="yes").validate()
