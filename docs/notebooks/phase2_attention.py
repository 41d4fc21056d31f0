# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Phase 2: attention
#
# Scaled dot-product attention lets every position read from the others, weighted by how well
# its query matches their keys:
#
# $$\operatorname{attention}(Q, K, V) = \operatorname{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}} + M\right) V.$$
#
# Shapes: $Q$ is $(T_q, d_k)$, $K$ is $(T_k, d_k)$, $V$ is $(T_k, d_v)$, the weights are $(T_q, T_k)$.

# %%
import tempfile
from pathlib import Path

import numpy as np
from IPython.display import Image

from nn.attention import attention_loops, attention_forward, attention_backward
from nn.masks import causal_mask
from nn.mha import attention_weights
from viz.plots import plot_attention

pictures = Path(tempfile.mkdtemp(prefix="twograd-attention-"))
tokens = "the cat sat on the mat".split()
rng = np.random.default_rng(0)

# %% [markdown]
# ## Q, K and V
#
# Each token's vector $x_t$ (here random, width $C = 8$) is projected three ways:
# $q_t = x_t W_Q$ (what it looks for), $k_t = x_t W_K$ (what it offers), $v_t = x_t W_V$ (what it
# passes on).

# %%
T, C, d = len(tokens), 8, 4
x = rng.standard_normal((T, C))                        # (T, C)
Wq, Wk, Wv = (rng.standard_normal((C, d)) / np.sqrt(C) for _ in range(3))
q, k, v = x @ Wq, x @ Wk, x @ Wv                       # (T, d) each
out, cache = attention_forward(q, k, v)
out.shape, attention_weights(cache).sum(axis=-1)       # every row of weights sums to 1

# %% [markdown]
# The loops form computes the same thing one scalar at a time (a dot product per query-key
# pair, a softmax per row, a weighted sum per output):

# %%
out_loops = attention_loops(q.tolist(), k.tolist(), v.tolist())
float(np.abs(np.array(out_loops) - out).max())

# %% [markdown]
# ## The mask
#
# A decoder may not look ahead: query $i$ sees key $j$ only when $j \le i$. The mask is
# boolean, `True` where attention is allowed; a masked key takes no part in the softmax, so
# its weight is exactly 0 (as if $M_{ij} = -\infty$).

# %%
mask = causal_mask(T)
mask.astype(int)

# %% [markdown]
# The same queries and keys without the mask (left panel) and with it (right; `plot_attention`
# labels its panels as heads): with the mask every row spreads its weight over the past only.

# %%
out_causal, cache_causal = attention_forward(q, k, v, mask)
weights = np.stack([attention_weights(cache), attention_weights(cache_causal)])   # (2, T, T)
Image(filename=plot_attention(weights, tokens, tokens, pictures / "masks.png",
                              title="left: no mask; right: causal mask"))

# %% [markdown]
# ## Its backward
#
# With $P = \operatorname{softmax}(S)$, $S = QK^\top/\sqrt{d_k}$ and $O = PV$:
#
# $$dV = P^\top dO, \qquad dP = dO\, V^\top, \qquad dS_{ij} = P_{ij}\Big(dP_{ij} - \sum_{l} P_{il}\, dP_{il}\Big),$$
#
# $$dQ = \frac{dS\, K}{\sqrt{d_k}}, \qquad dK = \frac{dS^\top Q}{\sqrt{d_k}}.$$
#
# A masked weight is 0, so no gradient flows through it:

# %%
dq, dk, dv = attention_backward(np.ones_like(out_causal), cache_causal)
dq.shape, dk.shape, dv.shape

# %% [markdown]
# ## Multi-head attention
#
# $H$ heads each attend in a subspace of width $C/H$; their outputs are concatenated and
# projected by $W_O$:
#
# $$\operatorname{MHA}(X) = \big[\operatorname{head}_1, \dots, \operatorname{head}_H\big] W_O, \qquad
# \operatorname{head}_h = \operatorname{attention}(X W_Q^{(h)}, X W_K^{(h)}, X W_V^{(h)}).$$

# %%
from nn import MultiHeadAttention

mha = MultiHeadAttention(d_model=C, n_heads=2, rng=np.random.default_rng(1))
y = mha.forward(x[None], mask=causal_mask(T))          # (B=1, T, C)
dx = mha.backward(np.ones_like(y))                      # adds into mha.grads, returns dL/dx
y.shape, dx.shape, mha.weights.shape                    # weights: (B, H, T, T)

# %%
Image(filename=plot_attention(mha.weights[0], tokens, tokens, pictures / "heads.png",
                              title="two causal heads, random weights"))

# %% [markdown]
# ## One head on the graph
#
# The loops form runs on Values too, so one small head (two tokens, width 2) can be drawn with
# every data and grad:

# %%
from models.tour_stages.attention import attention_graph

attention_graph(("the", "cat"), d=2)

# %% [markdown]
# ## Checked three ways
#
# Multi-head attention's backward (manual) against the engine (graph) and finite differences
# (numeric), on the registry's first case:

# %%
from nn import get_piece, check_piece

report = check_piece(get_piece("mha"))[0]
report.passed, len(report.rows)

# %%
print(report)
