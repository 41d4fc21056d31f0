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
# # Phase 1: backpropagation
#
# A scalar autodiff engine: every number is an `engine.Value` that remembers which op made it,
# from which parents, and the local partial derivative towards each parent. `backward()`
# applies the chain rule in reverse topological order.

# %%
from engine import Value, tanh, explain, numerical_gradient
from viz import draw

# %% [markdown]
# ## The chain rule on one expression
#
# $y = x^2 + 3x$ at $x = 2$: $\;dy/dx = 2x + 3 = 7$.

# %%
x = Value(2.0, "x")
y = x * x + 3 * x
y.backward()
x, numerical_gradient(lambda x: x * x + 3 * x, [2.0])

# %% [markdown]
# ## A neuron, drawn
#
# The classic two-input neuron $o = \tanh(x_1 w_1 + x_2 w_2 + b)$. Each box shows a Value's
# label, data and grad; each op is a node of its own.

# %%
from models.zoo.neuron import neuron_graph

o, inputs = neuron_graph()          # already backpropagated
draw(o, rankdir="LR")

# %% [markdown]
# `explain` spells out the chain rule for one input: every path from the leaf to the output,
# the local partial on each edge, and the product along the path. The sum over paths is the
# gradient:
#
# $$\frac{\partial o}{\partial x_1} = \sum_{\text{paths}} \prod_{\text{edges}} \frac{\partial\, \text{child}}{\partial\, \text{parent}}.$$

# %%
print(explain(o, inputs["x1"]))

# %% [markdown]
# A Value used more than once has several paths; their contributions add up
# ($a^2 + a$: $2a + 1$ from three paths).

# %%
a = Value(0.5, "a")
e = explain(a * a + a, a)
e.count, [round(p.product, 6) for p in e.paths], e.total

# %% [markdown]
# The drawing can colour those paths:

# %%
draw(o, highlight=inputs["x1"])

# %% [markdown]
# ## An MLP learns XOR, micrograd-style
#
# `ScalarMLP` is a network of Values: every weight is a leaf of the graph, and a plain
# gradient-descent step is `p.data -= lr * p.grad`. The loss is
#
# $$L = \sum_{n=1}^{4} \big(f(x_n) - y_n\big)^2.$$

# %%
from models import ScalarMLP

net = ScalarMLP(2, [4, 1], out_activation="tanh", seed=0)
xs, ys = [[0, 0], [0, 1], [1, 0], [1, 1]], [-1, 1, 1, -1]
losses = []
for step in range(200):
    loss = sum((net(x)[0] - y) ** 2 for x, y in zip(xs, ys))
    net.zero_grad()
    loss.backward()
    for p in net.parameters():
        p.data -= 0.05 * p.grad
    losses.append(loss.data)
net, [round(net(x)[0].data, 3) for x in xs]

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(5, 2.6))
ax.semilogy(losses); ax.set_xlabel("step"); ax.set_ylabel("loss")
plt.show()

# %% [markdown]
# ## Both ways: manual backprop and the graph
#
# The zoo's `MLP` has a hand-derived backward (numpy) and a loops form that runs on the
# engine. `train("xor")` trains it by the manual path; `engine="graph"` trains the same
# model, from the same seed, on Values. The two runs end at the same loss to rounding.
# In a notebook the report shows a table and its loss curve.

# %%
from models import train

manual = train("xor", quiet=True)
graph = train("xor", engine="graph", quiet=True)
manual

# %%
manual.metrics["loss"], graph.metrics["loss"], abs(manual.metrics["loss"] - graph.metrics["loss"])

# %% [markdown]
# ## Manual against graph gradients, three ways
#
# Every piece is registered once in `nn.registry` and checked three ways: the loops form on
# Values (graph), the hand-written backward (manual) and central differences (numeric).
# Here is the MLP's check on one of its cases:

# %%
from nn import get_piece, check_piece

print(check_piece(get_piece("mlp"))[0])
