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
# # Phase C: alignment
#
# A toy world in which a tiny GPT is aligned to a preference it cannot see directly:
#
# 1. a **reference policy** $\pi_{\text{ref}}$: a GPT trained on name-like strings;
# 2. a hidden **true reward**: 1 for a name that ends in a vowel and has at most 6 letters, else 0;
# 3. **preferences**: pairs of the reference's samples, labelled by the true reward;
# 4. a **reward model** $r_\phi$ learned from the pairs, which sees only letter counts;
# 5. three ways to improve the policy against $r_\phi$: best-of-$n$, REINFORCE with a KL
#    penalty, and DPO.
#
# Every loss below lives in `nn.preference`, is derived in its docstring, and is checked three
# ways like any other piece. The step counts are the tour's (small), so the numbers are rough.

# %%
import tempfile
from pathlib import Path

import numpy as np
from IPython.display import Image

from models import align
from nn import get_piece, check_piece

folder = Path(tempfile.mkdtemp(prefix="twograd-align-"))
small = dict(steps=25, ref_steps=300, rm_steps=300, pair_samples=2000, eval_samples=150)

# %% [markdown]
# ## The reward model: Bradley-Terry
#
# The probability that the chosen name $w$ beats the rejected $l$ is modelled as
# $\sigma(r_\phi(w) - r_\phi(l))$, and the loss is its negative log-likelihood:
#
# $$L_{\text{BT}} = -\frac{1}{B} \sum_b \log \sigma\big(r_\phi(w_b) - r_\phi(l_b)\big).$$
#
# ## Best-of-$n$
#
# Draw $n$ samples from $\pi_{\text{ref}}$ and keep the one $r_\phi$ likes best. No training;
# its KL from the reference is known in closed form, $\log n - (n - 1)/n$ (1.835 nats at $n = 16$).
#
# ## REINFORCE with a KL penalty
#
# Maximise the learned reward, leashed to the reference:
#
# $$J(\theta) = \mathbb{E}_{y \sim \pi_\theta}\big[r_\phi(y)\big] - \beta\, \mathrm{KL}\big(\pi_\theta \,\|\, \pi_{\text{ref}}\big),$$
#
# whose gradient REINFORCE estimates from samples, with a leave-one-out baseline $b$:
#
# $$\nabla J \approx \mathbb{E}\Big[\big(r_\phi(y) - \beta \log\tfrac{\pi_\theta(y)}{\pi_{\text{ref}}(y)} - b\big)\, \nabla \log \pi_\theta(y)\Big].$$
#
# ## DPO
#
# Direct Preference Optimization skips the reward model and fits the preferences with the
# policy itself, its implicit reward being $\beta \log \pi_\theta / \pi_{\text{ref}}$:
#
# $$L_{\text{DPO}} = -\log \sigma\Big(\beta \log\frac{\pi_\theta(w)}{\pi_{\text{ref}}(w)} - \beta \log\frac{\pi_\theta(l)}{\pi_{\text{ref}}(l)}\Big).$$

# %%
[(name, all(r.passed for r in check_piece(get_piece(name))))
 for name in ("bradley_terry", "reinforce_kl", "dpo", "token_logprobs")]

# %% [markdown]
# ## All three methods
#
# The table gives each policy's mean true reward (at most 1), its learned reward (the reward
# model, put on the true reward's scale), its KL from the reference in nats, and how many of
# 100 samples are distinct.

# %%
result = align("all", out=folder / "all", quiet=True, **small)
result

# %%
result.metrics

# %% [markdown]
# The reward model's loss and pairwise accuracy while it trains:

# %%
Image(filename=result.files["reward_model"])

# %% [markdown]
# Each trained policy, step by step:

# %%
Image(filename=result.files["curves"])

# %% [markdown]
# ## Reward hacking
#
# The reward model sees letter counts, not which letter comes last, so it can be fooled. Take
# the leash off ($\beta = 0$) and give REINFORCE more steps: the learned reward climbs while the
# true reward falls, the policy drifts far from the reference (a large KL), and its samples
# collapse onto what the reward model overrates.

# %%
hacked = align("reinforce", kl=0.0, out=folder / "hacked", quiet=True, **{**small, "steps": 60})
hacked

# %%
hacked.hacking

# %%
Image(filename=hacked.files["samples"])
