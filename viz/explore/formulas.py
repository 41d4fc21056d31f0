"""The local derivative of each engine op, as the page shows it: ONE table, keyed by `Value.op`.

The formulas are those the ops state in their docstrings (engine/value.py, engine/fused_rows.py);
the numbers come from the partials each node stored when it ran (`Value.partials`), so this
table is text only and can never change a gradient. An op not listed (a new one) is shown
as "d out / d parent = the partial the op stored".

    >>> formula("tanh")
    'tanh(x);  d/dx = 1 - tanh(x)^2'
"""

from __future__ import annotations

#: op name (Value.op) -> its forward and local partial derivatives, as the engine's docstrings write them.
LOCAL_DERIVATIVES: dict[str, str] = {
    "+": "a + b;  d/da = 1,  d/db = 1",
    "-": "a - b;  d/da = 1,  d/db = -1",
    "*": "a * b;  d/da = b,  d/db = a",
    "/": "a / b;  d/da = 1/b,  d/db = -a/b^2",
    "**": "x ** p;  d/dx = p x^(p-1),  d/dp = x^p ln x",
    "neg": "-a;  d/da = -1",
    "abs": "|x|;  d/dx = sign(x), 0 at x = 0",
    "exp": "e^x;  d/dx = e^x",
    "log": "ln x;  d/dx = 1/x",
    "sqrt": "sqrt(x);  d/dx = 1 / (2 sqrt(x))",
    "tanh": "tanh(x);  d/dx = 1 - tanh(x)^2",
    "sigmoid": "s(x) = 1 / (1 + e^-x);  d/dx = s(x) (1 - s(x))",
    "relu": "max(0, x);  d/dx = 1 for x > 0, else 0",
    "erf": "erf(x);  d/dx = 2/sqrt(pi) e^(-x^2)",
    "dot": "sum_i w_i x_i;  d/dw_i = x_i,  d/dx_i = w_i",
    "sum": "sum_i x_i;  d/dx_i = 1",
    "logsumexp": "L = logsumexp(c x);  dL/dx_j = c s_j",
    "softmax": "s_i = e^(c x_i - L);  ds_i/dx_i = c s_i,  ds_i/dL = -s_i",
    "rrms": "r = 1 / sqrt(mean(x^2) + eps);  dr/dx_j = -x_j r^3 / C",
    "rms_norm": "y_i = gamma_i x_i r;  dy_i/dx_i = gamma_i r,  dy_i/dgamma_i = x_i r,  dy_i/dr = gamma_i x_i",
    "cross_entropy": "L = log sum_k e^(z_k) - z_t;  dL/dz_j = p_j - delta_jt",
}

#: what the panel says for an op the table does not know
UNKNOWN = "d out / d parent = the local partial the op stored when it ran"


def formula(op: str) -> str:
    """The local-derivative formula of engine op `op` ("**3" and other constant powers are "**")."""
    if op in LOCAL_DERIVATIVES:
        return LOCAL_DERIVATIVES[op]
    if op.startswith("**"):  # x ** 3 is recorded as op "**3"
        return f"x ** {op[2:]};  d/dx = p x^(p-1)"
    return UNKNOWN
