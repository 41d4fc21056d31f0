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
# # Phase A: a tiny transformer, trained and sampled
#
# A decoder-only GPT (`models.GPT`): token and position embeddings, a stack of causal pre-norm
# blocks, a final norm and a linear head. Its whole backward is derived by hand and checked
# three ways (`twograd check gpt`). It trains by next-token prediction, minimising
#
# $$L = -\frac{1}{N} \sum_{t} \log p_\theta(x_{t+1} \mid x_{\le t}),$$
#
# the cross-entropy of each position's prediction against the token that follows.
# Step counts here are half the recipes', to keep the notebook quick.

# %%
import tempfile
from pathlib import Path

from IPython.display import Image

from models import train, sample

runs = Path(tempfile.mkdtemp(prefix="twograd-runs-"))

# %% [markdown]
# ## Reverse five digits
#
# Each example is five symbols, a separator `>`, then the same symbols reversed:
# `3 1 4 1 5 > 5 1 4 1 3`. The loss is taken on the answer only, and 500 held-out questions
# are never drawn for training. A causal model must learn to look back at the mirrored
# position, which attention can do in one step.

# %%
reverse = train("reverse", steps=300, out=runs / "reverse", quiet=True)
reverse

# %%
reverse.metrics

# %% [markdown]
# The trained model answers a question it has never seen, greedily, token by token:

# %%
sample(runs / "reverse", "3 1 4 1 5")

# %% [markdown]
# Each picture is one block's attention on a held-out example (one panel per head). In the
# first block, the answer's positions (the rows below `>`) attend to the mirrored question
# positions: an anti-diagonal. (The second block, `reverse.files["attention_block_2"]`, mostly
# attends to each position itself.)

# %%
Image(filename=reverse.files["attention_block_1"])

# %% [markdown]
# ## Names, one character at a time
#
# The `lines` task makes every line of a file one document, wrapped in a boundary token, as
# makemore does with a list of names. twograd ships no names list (nothing is downloaded), so
# this uses the name-like strings that the alignment experiment trains its reference policy
# on (`models.zoo.reward.make_names`).

# %%
from models.zoo.reward import make_names

names = make_names(3000, seed=0)
(runs / "names.txt").write_text("\n".join(names) + "\n")
names[:8]

# %%
lines = train("lines", data=runs / "names.txt", steps=300, out=runs / "names", quiet=True)
lines

# %% [markdown]
# A unigram model (each character at its overall frequency) scores `unigram_val_loss` nats per
# character; the transformer, which sees the characters before, does better:

# %%
lines.metrics["val_loss"], lines.metrics["unigram_val_loss"]

# %% [markdown]
# Sampling at temperature $\tau$ draws from $\operatorname{softmax}(z / \tau)$: below 1 it
# sharpens the distribution, above 1 it flattens it.

# %%
sample(runs / "names", n=12, temperature=0.8, seed=0).samples

# %%
Image(filename=lines.files["loss_curve"])
