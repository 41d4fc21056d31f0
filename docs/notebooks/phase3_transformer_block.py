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
# # Phase 3: the Transformer block
#
# Tokens become vectors (embeddings), get their position added (sinusoids), and pass through
# the paper's block: attention, then a feed-forward network, each with a residual path and a
# layer norm. Every piece is the library's; this notebook only calls and checks them.

# %%
import numpy as np
import matplotlib.pyplot as plt

from nn import Embedding, LayerNorm, TransformerBlock, get_piece, check_piece
from nn.positions import positional_encoding, positional_shift

tokens = "the cat sat on the mat".split()
vocab = sorted(set(tokens))
ids = np.array([[vocab.index(t) for t in tokens]])     # (B=1, T=6)
ids

# %% [markdown]
# ## Embeddings
#
# An embedding is a lookup: row $i$ of a $(V, C)$ table is token $i$'s vector. Its gradient
# adds the upstream gradient of every position into the row of the token found there
# (a token seen twice, like "the", gets two contributions).

# %%
C = 8
emb = Embedding(len(vocab), C, rng=np.random.default_rng(0))
x_tok = emb.forward(ids)                                   # (1, 6, 8)
emb.backward(np.ones_like(x_tok))
x_tok.shape, emb.grads["W"][:, 0]                          # "the" (row 3) has gradient 2

# %% [markdown]
# ## Sinusoidal positions
#
# $$PE_{p, 2i} = \sin\!\big(p\, \omega_i\big), \qquad PE_{p, 2i+1} = \cos\!\big(p\, \omega_i\big),
# \qquad \omega_i = 10000^{-2i/C}.$$
#
# Each column pair is a clock running at its own speed:

# %%
pe = positional_encoding(64, 32)                           # (T=64, C=32)
fig, ax = plt.subplots(figsize=(6, 3))
im = ax.imshow(pe.T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
ax.set_xlabel("position p"); ax.set_ylabel("channel"); fig.colorbar(im, ax=ax)
plt.show()

# %% [markdown]
# Shifting by $k$ positions is the same rotation for every $p$: $PE_{p+k} = PE_p\, M_k$, with
# $M_k$ block diagonal of $2 \times 2$ rotations by $k\omega_i$. That is why a model can learn
# relative offsets from these codes.

# %%
M3 = positional_shift(3, 32)
np.abs(pe[:-3] @ M3 - pe[3:]).max()

# %% [markdown]
# ## Layer norm
#
# $$\hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma \odot \hat x + \beta,$$
#
# with $\mu$ and $\sigma^2$ the mean and (biased) variance of the row. Every row comes out with
# mean 0 and standard deviation 1 (before $\gamma$, $\beta$):

# %%
ln = LayerNorm(C)
y = ln.forward(x_tok)
y.mean(axis=-1).round(12), y.std(axis=-1).round(4)

# %% [markdown]
# ## The block
#
# The paper's block is post-norm: $h = \mathrm{LN}(x + \mathrm{MHA}(x))$,
# $y = \mathrm{LN}(h + \mathrm{FFN}(h))$, with $\mathrm{FFN}(h) = \max(0, hW_1 + b_1)W_2 + b_2$.
# The input is $\sqrt{C}\, E[\text{tokens}] + PE$.

# %%
x = np.sqrt(C) * x_tok + positional_encoding(len(tokens), C)[None]   # (1, T, C)
block = TransformerBlock(d_model=C, n_heads=2, rng=np.random.default_rng(0))
out = block.forward(x)
dx = block.backward(np.ones_like(out))                 # adds into block.grads
out.shape, dx.shape, sorted(block.grads)[:6]

# %% [markdown]
# ## Drawn by sub-layer
#
# The loops form of the block runs on Values too. Over two tokens of width 4 it is a graph of
# about 400 Values; each sub-layer is drawn in its own box, every node with its data and grad.

# %%
from models.tour_stages.transformer import block_graph

block_graph(("the", "cat"))

# %% [markdown]
# ## Checked three ways
#
# The registry's block cases cover post- and pre-norm, layer norm and RMSNorm, ReLU and GELU,
# with and without biases, causal and padding masks. Each compares the loops form on Values
# (graph), the hand-derived backward (manual) and finite differences (numeric):

# %%
piece = get_piece("transformer_block")
reports = check_piece(piece)
[(r.title, r.passed) for r in reports]

# %%
print(reports[0])
