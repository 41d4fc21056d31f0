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
# # Phase 0: math primitives
#
# Everything later in twograd is built from four small ideas: a matrix product, a softmax
# that does not overflow, the cross-entropy loss, and the finite differences that check every
# gradient. This notebook calls the library's own functions for each; nothing is re-implemented here.

# %%
import numpy as np
import matplotlib.pyplot as plt

from engine import numerical_gradient
from nn.linear import matmul_loops, matmul_forward, matmul_backward
from nn.softmax import softmax_loops, softmax_forward, log_softmax_forward
from nn.losses import cross_entropy_forward, cross_entropy_backward

# %% [markdown]
# ## A matrix product is three loops
#
# $$C_{ij} = \sum_k A_{ik} B_{kj}$$
#
# `matmul_loops` is that sum written over Python lists of scalars (it runs on floats and on
# `engine.Value`s alike); `matmul_forward` is the numpy form. They agree.

# %%
A = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]          # (2, 3)
B = [[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]        # (3, 2)
C_loops = matmul_loops(A, B)
C_numpy, cache = matmul_forward(np.array(A), np.array(B))
C_loops, C_numpy

# %% [markdown]
# Its backward is two more products. With $C = AB$ and an upstream gradient
# $G = \partial L / \partial C$:
#
# $$\frac{\partial L}{\partial A} = G B^\top, \qquad \frac{\partial L}{\partial B} = A^\top G.$$

# %%
G = np.ones((2, 2))
dA, dB = matmul_backward(G, cache)
dA, np.allclose(dA, G @ np.array(B).T), np.allclose(dB, np.array(A).T @ G)

# %% [markdown]
# ## A softmax that does not overflow
#
# $$\operatorname{softmax}(x)_i = \frac{e^{x_i}}{\sum_j e^{x_j}} = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \qquad m = \max_j x_j.$$
#
# Subtracting the row's maximum changes nothing mathematically, but keeps every exponent
# $\le 0$, so nothing overflows. The naive formula on logits near 1000 gives `nan`:

# %%
x = np.array([1000.0, 1001.0, 1002.0])
with np.errstate(over="ignore", invalid="ignore"):
    naive = np.exp(x) / np.exp(x).sum()
stable, _ = softmax_forward(x)
naive, stable, softmax_loops([1000.0, 1001.0, 1002.0])

# %% [markdown]
# ## Cross-entropy
#
# For logits $z$ and the right class $y$, the loss is the negative log-probability of $y$:
#
# $$L = -\log \operatorname{softmax}(z)_y = \operatorname{logsumexp}(z) - z_y,
# \qquad \frac{\partial L}{\partial z_i} = \operatorname{softmax}(z)_i - [i = y].$$
#
# The gradient is "predicted probability minus the one-hot target", averaged over the batch.

# %%
z = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.0]])   # (B=2, K=3)
y = np.array([0, 1])
loss, cache = cross_entropy_forward(z, targets=y)
(dz,) = cross_entropy_backward(1.0, cache)
p, _ = softmax_forward(z)
loss, dz, np.allclose(dz, (p - np.eye(3)[y]) / len(y))

# %%
lsm, _ = log_softmax_forward(z)
float(loss), float(-lsm[np.arange(2), y].mean())   # the same number, from log_softmax

# %% [markdown]
# ## Finite differences
#
# The central difference
#
# $$f'(x) \approx \frac{f(x + h) - f(x - h)}{2h}$$
#
# has a truncation error of order $h^2$ (the $f'''$ term of the Taylor series) and a rounding
# error of order $\varepsilon_{\text{mach}} / h$. `engine.numerical_gradient` uses $h = 10^{-6}$;
# every gradient in twograd is checked against it.

# %%
f = lambda x: x ** 3          # f'(2) = 12
numerical_gradient(f, [2.0])

# %% [markdown]
# Sweeping $h$ shows both errors: the error falls as $h^2$ until rounding takes over.

# %%
hs = np.logspace(-12, -1, 45)
errors = [abs(numerical_gradient(f, [2.0], eps=h)[0] - 12.0) + 1e-18 for h in hs]
fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.loglog(hs, errors, "o-", ms=3)
ax.loglog(hs, 2.0 * hs ** 2, "--", label=r"$h^2$ (truncation)")
ax.loglog(hs, 1e-15 * 8 / hs, ":", label=r"$\varepsilon / h$ (rounding)")
ax.set_xlabel("h"); ax.set_ylabel("|error| of f'(2)"); ax.legend(); ax.set_ylim(1e-13, 1e1)
plt.show()
