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
# # Phase B: distillation
#
# A large teacher knows more than its labels say: its output distribution ranks the wrong
# classes too. A small student can learn from those soft targets (Hinton, Vinyals and Dean 2015).
# With teacher logits $z_t$, student logits $z_s$, a temperature $T$ and a weight $\alpha$:
#
# $$\begin{aligned} L = {} & \alpha\, T^2\, \mathrm{KL}\!\big(\operatorname{softmax}(z_t/T) \,\big\|\, \operatorname{softmax}(z_s/T)\big) \\
#      & + (1 - \alpha)\, \mathrm{CE}\big(y, \operatorname{softmax}(z_s)\big), \end{aligned}$$
#
# whose gradient is
#
# $$\begin{aligned} \frac{\partial L}{\partial z_s} = {} & \alpha\, T \big(\operatorname{softmax}(z_s/T) - \operatorname{softmax}(z_t/T)\big) \\
#      & + (1 - \alpha)\big(\operatorname{softmax}(z_s) - \mathrm{onehot}(y)\big). \end{aligned}$$
#
# The $T^2$ keeps the soft term's gradient at the same scale whatever $T$ is.

# %%
import tempfile
from pathlib import Path

import numpy as np
from IPython.display import Image

from nn.distill import distillation_forward, distillation_backward
from nn.softmax import softmax_forward

# %% [markdown]
# ## Temperature softens
#
# One teacher's logits over three classes, at rising temperatures: the ranking of the wrong
# classes, invisible at $T = 1$, shows at $T = 4$.

# %%
z_teacher = np.array([6.0, 2.0, -1.0])
{T: softmax_forward(z_teacher / T)[0].round(3) for T in (1, 2, 4, 8)}

# %% [markdown]
# ## The loss and its gradient, from `nn.distill`
#
# The library's manual backward against the closed form above:

# %%
rng = np.random.default_rng(0)
z_s, z_t, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), np.array([0, 2, 1, 0])
T, alpha = 4.0, 0.9
loss, cache = distillation_forward(z_s, teacher_logits=z_t, targets=y, temperature=T, alpha=alpha)
(dz,) = distillation_backward(1.0, cache)
soft = lambda z: softmax_forward(z)[0]
expected = (alpha * T * (soft(z_s / T) - soft(z_t / T)) + (1 - alpha) * (soft(z_s) - np.eye(3)[y])) / len(y)
float(loss), float(np.abs(dz - expected).max())

# %% [markdown]
# ## A wide MLP distilled into a narrow one that sees 15 labels
#
# On the spirals (three interleaved arms), a 2-128-128-3 teacher learns from every training
# label. A 2-16-16-3 student sees only 15 labels (5 per arm), plus the teacher's logits on every
# training input. It is compared with the same student, from the same seed and for the same
# steps, trained on the 15 labels alone. `distill` runs all three and reports mean ± std over
# the seeds.

# %%
from models import distill

out = Path(tempfile.mkdtemp(prefix="twograd-distill-")) / "spirals"
report = distill("spirals", steps=300, seeds=2, out=out, quiet=True)
report

# %%
report.metrics

# %% [markdown]
# The two students' held-out accuracy during training (mean ± std over the seeds):

# %%
Image(filename=report.files["learning_curves"])

# %% [markdown]
# What the student learns from: the teacher's softmax on one held-out point at $T = 1, 2, 4, 8$.

# %%
Image(filename=report.files["soft_targets"])
