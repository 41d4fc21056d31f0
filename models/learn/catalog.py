"""The one table of exercises, in the plan's order. One exercise = one entry of `EXERCISES`.

An nn-piece exercise is graded by `PieceGrader(PieceSpec(registry piece, its three function
names, edge cases, knowledge))`: the piece's own functions are the reference. The others have
graders of their own (special.py). The math is named by import path (`math=`), never copied.
"""

from __future__ import annotations

import difflib
from typing import Any

from engine import UnknownNameError
from models.learn import cases as c
from models.learn.exercise import Exercise, Fn
from models.learn.grade import EdgeCase, PieceGrader, PieceSpec
from models.learn.special import AdamGrader, GradcheckGrader, MaskGrader, TrainGrader, ValueGrader


def _trio(module: str, stem: str, loops_signature: str = "", optional_backward: bool = False) -> tuple[Fn, Fn, Fn]:
    return (
        Fn(f"{module}:{stem}_loops", signature=loops_signature),
        Fn(f"{module}:{stem}_forward"),
        Fn(f"{module}:{stem}_backward", optional=optional_backward),
    )


#: the module that registers each piece used here (nn.registry's discovery would import every piece)
HOMES: dict[str, str] = {
    "matmul": "nn.linear",
    "linear": "nn.linear",
    "softmax": "nn.softmax",
    "cross_entropy": "nn.losses",
    "mse": "nn.losses",
    "sigmoid": "nn.activations",
    "relu": "nn.activations",
    "tanh": "nn.activations",
    "mlp": "models.zoo.mlp",
    "attention": "nn._attention_pieces",
    "mha": "nn.mha",
    "embedding": "nn.embedding",
    "sinusoidal_positions": "nn.positions",
    "layer_norm": "nn.normalization",
    "feedforward": "nn.feedforward",
    "residual": "nn.residual",
    "transformer_block": "nn.transformer_block",
    "distillation": "nn.distill",
    "bradley_terry": "nn.preference",
    "dpo": "nn.preference",
}


def _spec(piece: str, stem: str, **kw: Any) -> PieceSpec:
    return PieceSpec(piece, f"{stem}_loops", f"{stem}_forward", f"{stem}_backward", home=HOMES[piece], **kw)


def _f32(piece: str, case: int = 0) -> EdgeCase:
    return c.float32_of(piece, case, HOMES[piece])


EXERCISES: tuple[Exercise, ...] = (
    # ------------------------------------------------------------------ Phase 0
    Exercise(
        "matmul",
        "Phase 0",
        "matrix product with explicit loops",
        _trio("nn.linear", "matmul"),
        ("nn.linear:matmul_loops", "nn.linear:matmul_forward", "nn.linear:matmul_backward"),
        "dA and dB of C = A @ B from C_ij = sum_p A_ip B_pj, index by index.",
        (),
        (
            "Look at one entry: which entries of C does A_ip reach, and with what coefficient?",
            "dL/dA_ip = sum_j G_ij B_pj and dL/dB_pj = sum_i A_ip G_ij, with G = dL/dC.",
            "In matrix form dA = G B^T (n, k) and dB = A^T G (k, m): check the shapes before the numbers.",
        ),
        PieceGrader(_spec("matmul", "matmul", edge=(_f32("matmul", 1),))),
    ),
    Exercise(
        "softmax",
        "Phase 0",
        "a stable softmax",
        _trio("nn.softmax", "softmax"),
        ("nn.softmax", "nn.softmax:softmax_backward"),
        "dx from dy (both (..., C)) through the Jacobian of a row's softmax, dy_i/dx_j for every pair i, j of the row.",
        (),
        (
            "Look at the largest logit: what is e^1000 in float64? The result does not change if you subtract a constant from a row.",
            "Differentiate y_i = e^(x_i) / S: dy_i/dx_j = y_i delta_ij - y_i y_j. Both terms matter.",
            "dx_j = sum_i dy_i dy_i/dx_j = y_j (dy_j - sum_i dy_i y_i), over the last axis only.",
        ),
        PieceGrader(
            _spec(
                "softmax",
                "softmax",
                knowledge=c.know_softmax,
                edge=(c.big_logits((3, 5)), c.big_logits((1, 4), 1e4), _f32("softmax", 1)),
            )
        ),
    ),
    Exercise(
        "cross_entropy",
        "Phase 0",
        "cross-entropy from logits",
        _trio("nn.losses", "cross_entropy"),
        ("nn.losses:cross_entropy_forward", "nn.losses:cross_entropy_backward"),
        "The gradient of the mean over the batch of -log softmax(z)_target with respect to the logits.",
        ("softmax",),
        (
            "Look at -log softmax(z)_t written as log sum_j e^(z_j) - z_t: no softmax needs to be formed, and no log of 0.",
            "d/dz_j of log sum e^z is softmax(z)_j; d/dz_j of -z_t is -1 when j = t.",
            "dz = (softmax(z) - onehot(t)) / B: the loss is a mean over the B rows.",
        ),
        PieceGrader(
            _spec(
                "cross_entropy",
                "cross_entropy",
                knowledge=c.know_cross_entropy,
                edge=(c.big_logits((3, 4), targets=True), _f32("cross_entropy", 1)),
            )
        ),
    ),
    Exercise(
        "gradcheck",
        "Phase 0",
        "a central-difference gradient checker",
        (Fn("engine.gradcheck:numerical_gradient"),),
        ("engine.gradcheck:numerical_gradient", "engine.gradcheck:Tolerance"),
        "Why (f(x+h) - f(x-h)) / 2h has error O(h^2), and why h can be neither too large nor too small.",
        (),
        (
            "Look at the Taylor series of f(x+h) and f(x-h): which terms cancel in their difference?",
            "Central difference: (f(x+h) - f(x-h)) / (2h); truncation error ~ h^2 f'''/6, rounding error ~ 1e-16 |f| / h.",
            "Balance the two errors: h around 1e-6 in float64. Nudge one coordinate at a time and put it back.",
        ),
        GradcheckGrader(),
    ),
    # ------------------------------------------------------------------ Phase 1
    Exercise(
        "value",
        "Phase 1",
        "the scalar engine: Value with + * ** exp tanh and backward",
        (Fn("engine.value:Value", signature="(data)"),),
        ("engine.value", "engine.value:Value.backward"),
        "Each op's local partial derivatives, and the chain rule applied in reverse topological order.",
        ("gradcheck",),
        (
            "Look at a node used twice (a * a, or a + a): how many paths reach it from the output?",
            "Each op stores its local partials; backward does parent.grad += partial * out.grad, in reverse topological order.",
            "The topological order: visit children before parents with an explicit stack (recursion stops near 1000 levels).",
        ),
        ValueGrader(),
    ),
    Exercise(
        "activations",
        "Phase 1",
        "sigmoid, ReLU and tanh",
        _trio("nn.activations", "sigmoid") + _trio("nn.activations", "relu") + _trio("nn.activations", "tanh"),
        (
            "nn.activations:sigmoid_forward",
            "nn.activations:relu_forward",
            "nn.activations:tanh_forward",
            "nn.activations:sigmoid_backward",
            "nn.activations:relu_backward",
            "nn.activations:tanh_backward",
        ),
        "Each activation's derivative, written with what its forward cached, and dx = dout times it (elementwise).",
        ("value",),
        (
            "Look at what forward already computed: each derivative can be written with the output alone.",
            "sigmoid' = s (1 - s); relu' = 1 where x > 0 else 0; tanh' = 1 - tanh^2.",
            "For large |x|, write tanh and sigmoid so that no e^|x| is formed (np.tanh; a sigmoid split by sign).",
        ),
        PieceGrader(
            _spec("sigmoid", "sigmoid", knowledge=c.know_sigmoid, edge=(c.big_inputs("x", (2, 3)), _f32("sigmoid", 2))),
            _spec("relu", "relu", edge=(_f32("relu", 2),)),
            _spec("tanh", "tanh", knowledge=c.know_tanh, edge=(c.big_inputs("x", (2, 3)), _f32("tanh", 2))),
        ),
    ),
    Exercise(
        "linear",
        "Phase 1",
        "the linear layer y = x W + b",
        _trio("nn.linear", "linear"),
        ("nn.linear:linear_forward", "nn.linear:linear_backward"),
        "dx, dW and db, including the sum over the batch for the broadcast bias.",
        ("matmul",),
        (
            "Look at b: it is added to every row, so its gradient collects one term per row.",
            "dx = G W^T, dW = x^T G, db = sum over rows of G (x viewed as rows when it is (B, T, n_in)).",
        ),
        PieceGrader(_spec("linear", "linear", knowledge=c.know_linear, edge=(_f32("linear", 1),))),
    ),
    Exercise(
        "mse",
        "Phase 1",
        "mean squared error",
        _trio("nn.losses", "mse"),
        ("nn.losses:mse_forward", "nn.losses:mse_backward"),
        "d/dpred of mean((pred - target)^2) over all N elements.",
        (),
        (
            "Look at the mean: over how many elements, and does it reach the gradient?",
            "dpred = 2 (pred - target) / N, and dtarget = -dpred.",
        ),
        PieceGrader(_spec("mse", "mse", knowledge=c.know_mse, edge=(_f32("mse", 1),))),
    ),
    Exercise(
        "mlp",
        "Phase 1",
        "the whole MLP's backward by the chain rule",
        _trio("models.zoo.mlp", "mlp"),
        ("models.zoo.mlp", "models.zoo.mlp:mlp_backward"),
        "The MLP's gradient, one layer's backward at a time in reverse order.",
        ("linear", "activations", "mse", "cross_entropy"),
        (
            "Look at the order: the last layer's backward runs first, and each gives the next its dx.",
            "Per layer: dz = dh * f'(z); then dh_prev, dW, db from the linear backward; the loss's backward starts it all.",
        ),
        PieceGrader(_spec("mlp", "mlp", max_full_cases=4)),
    ),
    Exercise(
        "training_loop",
        "Phase 1",
        "the training loop (graded on XOR)",
        (
            Fn(
                "models.training.trainer:Trainer",
                alias="train",
                signature="(loss_and_grad, params, *, lr, steps)",
                contract="Plain gradient descent for `steps` steps. loss_and_grad(params) -> (loss, grads), grads keyed by "
                "parameter name like params;\nupdate every params[name] IN PLACE, p <- p - lr dL/dp; return the list of the "
                "`steps` losses, each taken before its step's update.",
            ),
        ),
        (
            "nn.optim:SGD",
        ),  # the update rule; what train must do is its contract (the Trainer's docstring is about runs)
        "Gradient descent: p <- p - lr dL/dp, repeated; the loss goes down.",
        ("mlp",),
        (
            "Look at where the parameters live: update the arrays in params in place, every step.",
            "Each step: loss, grads = loss_and_grad(params); then p -= lr * grads[name] for each parameter; keep the loss.",
            "Return the list of the losses, one per step, each taken before that step's update.",
        ),
        TrainGrader(),
        see_also=("nn/optim.py, SGD",),
    ),
    # ------------------------------------------------------------------ Phase 2
    Exercise(
        "attention",
        "Phase 2",
        "scaled dot-product attention",
        _trio("nn.attention", "attention", loops_signature="(q, k, v, mask=None)"),
        ("nn.attention", "nn.attention:attention_forward", "nn.attention:attention_backward"),
        "dq, dk, dv through the scores S = q k^T / sqrt(d), the softmax and the weighted sum.",
        ("softmax", "matmul"),
        (
            "Look at the scale 1/sqrt(d) and where the mask goes: before the softmax, so masked keys get weight exactly 0.",
            "dV = P^T dO; dP = dO V^T; dS = P * (dP - sum_j dP P) (softmax's Jacobian); dq = dS k / sqrt(d), dk = dS^T q / sqrt(d).",
            "A row with no key allowed has no softmax: raise ValueError for it.",
        ),
        PieceGrader(
            _spec(
                "attention",
                "attention",
                knowledge=c.know_attention,
                max_full_cases=6,
                edge=(c.masked_row(), c.big_scores(), _f32("attention", 1)),
            )
        ),
    ),
    Exercise(
        "causal_mask",
        "Phase 2",
        "the causal mask",
        (Fn("nn.masks:causal_mask"),),
        ("nn.masks", "nn.masks:causal_mask"),
        "Which keys a query may see: j <= i + offset.",
        ("attention",),
        (
            "Look at one row: query i may see keys 0 .. i (and offset more when the queries are the last Tq of Tk).",
            "mask[i, j] = j <= i + offset, a boolean (Tq, Tk) array: compare two aranges with broadcasting.",
        ),
        MaskGrader(),
    ),
    Exercise(
        "mha",
        "Phase 2",
        "multi-head attention",
        _trio(
            "nn.mha",
            "mha",
            loops_signature="(xq, xkv, Wq, Wk, Wv, Wo, bq=None, bk=None, bv=None, bo=None, *, n_heads, mask=None)",
        ),
        ("nn.mha", "nn.mha:mha_forward", "nn.mha:mha_backward"),
        "Project, split into heads, attend per head, concatenate, project; backward in reverse.",
        ("attention", "linear"),
        (
            "Look at the head width: each head attends with d = C / H, so its scale is 1/sqrt(C / H).",
            "Split: (B, T, C) -> (B, H, T, C/H); attention per head; merge back; the backward reverses each reshape.",
        ),
        PieceGrader(
            _spec(
                "mha",
                "mha",
                knowledge=c.know_mha,
                max_full_cases=3,
                edge=(c.mha_odd_heads(), c.mha_big_scores(), _f32("mha", 3)),
            )
        ),
    ),
    # ------------------------------------------------------------------ Phase 3
    Exercise(
        "embedding",
        "Phase 3",
        "token embeddings",
        _trio("nn.embedding", "embedding"),
        ("nn.embedding:embedding_forward", "nn.embedding:embedding_backward"),
        "dW (V, C) of a table lookup out = W[ids]; the ids are integers and get no gradient.",
        (),
        (
            "Look at an id that appears twice: its row of dW must receive both positions' gradients.",
            "dW[v] = sum over positions p with ids[p] = v of dout[p]; np.add.at adds repeated indices, dW[ids] += does not.",
        ),
        PieceGrader(_spec("embedding", "embedding", knowledge=c.know_embedding, edge=(_f32("embedding", 1),))),
    ),
    Exercise(
        "positions",
        "Phase 3",
        "sinusoidal positions",
        _trio("nn.positions", "sinusoidal_positions"),
        ("nn.positions", "nn.positions:positional_encoding", "nn.positions:sinusoidal_positions_forward"),
        "PE(t, 2i) = sin(t / base^(2i/C)), PE(t, 2i+1) = cos(...); the gradient of x + PE.",
        ("embedding",),
        (
            "Look at which axis is time: the table is indexed by position t, the same for every sequence of the batch.",
            "PE[t, 2i] = sin(t w_i), PE[t, 2i+1] = cos(t w_i), w_i = base^(-2i/C); dx = dout (the table is a constant).",
        ),
        PieceGrader(_spec("sinusoidal_positions", "sinusoidal_positions", edge=(_f32("sinusoidal_positions", 0),))),
    ),
    Exercise(
        "layer_norm",
        "Phase 3",
        "layer norm",
        _trio("nn.normalization", "layer_norm"),
        ("nn.normalization:layer_norm_forward", "nn.normalization:layer_norm_backward"),
        "dx through the mean and the variance of each row, term by term.",
        ("linear",),
        (
            "Look at how x_i reaches the output: directly, through the mean mu, and through the variance sigma^2.",
            "dx = (1/sigma) (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = dy gamma; dgamma = sum dy xhat, dbeta = sum dy.",
        ),
        PieceGrader(_spec("layer_norm", "layer_norm", knowledge=c.know_layer_norm, edge=(_f32("layer_norm", 1),))),
    ),
    Exercise(
        "feedforward",
        "Phase 3",
        "the feed-forward network",
        _trio("nn.feedforward", "ffn"),
        ("nn.feedforward", "nn.feedforward:ffn_backward"),
        "FFN(x) = act(x W1 + b1) W2 + b2 and its backward, two linear layers around an activation.",
        ("linear", "activations"),
        (
            "Look at the order of the backward: second linear, the activation's derivative at the hidden pre-activation, first linear.",
            "dh = dy W2^T; da = dh * act'(a); dx = da W1^T; dW1 = x^T da, db1 = sum da; dW2 = h^T dy, db2 = sum dy.",
        ),
        PieceGrader(_spec("feedforward", "ffn", knowledge=c.know_ffn, edge=(_f32("feedforward", 0),))),
    ),
    Exercise(
        "residual",
        "Phase 3",
        "the residual connection",
        _trio("nn.residual", "residual"),
        ("nn.residual:residual_forward", "nn.residual:residual_backward"),
        "y = x + f: dx and df from dy, each the shape of y.",
        (),
        (
            "Look at y = x + f: what is dy/dx, and dy/df?",
            "dx = dout and df = dout: the skip path hands the gradient straight through.",
        ),
        PieceGrader(_spec("residual", "residual", knowledge=c.know_residual, edge=(_f32("residual", 1),))),
    ),
    Exercise(
        "transformer_block",
        "Phase 3",
        "the Transformer block (its backward is a stretch exercise)",
        _trio(
            "nn.transformer_block",
            "transformer_block",
            loops_signature="(x, Wq, Wk, Wv, Wo, W1, W2, gamma1, gamma2, bq=None, bk=None, bv=None, bo=None, b1=None, "
            "b2=None, beta1=None, beta2=None, *, n_heads, activation='relu', norm='layer', "
            "norm_first=False, causal=False, mask=None, eps=1e-05)",
            optional_backward=True,
        ),
        ("nn.transformer_block", "nn.transformer_block:transformer_block_forward"),
        "The block composed of the pieces before it; its backward (stretch) runs the pieces' backwards in reverse.",
        ("mha", "layer_norm", "feedforward", "residual"),
        (
            "Look at norm_first: post-norm is x = norm(x + attn(x)); pre-norm is x = x + attn(norm(x)).",
            "Two sub-layers, each wrapped in a residual and a norm; the backward adds the skip path's gradient to the sub-layer's.",
        ),
        PieceGrader(
            _spec(
                "transformer_block",
                "transformer_block",
                knowledge=c.know_block,
                max_full_cases=2,
                optional_backward=True,
                edge=(_f32("transformer_block", 0),),
            )
        ),
    ),
    # ------------------------------------------------------------------ Extensions
    Exercise(
        "adam",
        "Extensions",
        "Adam and AdamW",
        (
            Fn(
                "nn.optim:Adam",
                alias="adam_step",
                signature="(p, g, m, v, t, *, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, decoupled=False)",
                contract="One Adam step of the parameter p with gradient g, from the moments m, v of the t - 1 steps before "
                "(t counts from 1;\nm = v = 0 before the first). Returns the new (p, m, v). weight_decay is L2 in "
                "the gradient (Adam), or with\ndecoupled=True the decay p <- p - lr wd p first (AdamW).",
            ),
        ),
        ("nn.optim:Adam", "nn.optim:AdamW"),
        "The moment estimates, their bias corrections, and the two kinds of weight decay. Return (p, m, v).",
        ("training_loop",),
        (
            "Look at the first step: m and v start at 0, so without a correction the first steps are far too small.",
            "m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).",
            "Weight decay: Adam adds wd p to g (L2); AdamW (decoupled) first does p -= lr wd p and leaves g alone.",
        ),
        AdamGrader(),
        see_also=("nn/optim.py, Adam._update",),
    ),
    Exercise(
        "distillation",
        "Extensions",
        "the distillation loss with temperature",
        _trio("nn.distill", "distillation"),
        ("nn.distill", "nn.distill:distillation_backward"),
        "d/dlogits of alpha T^2 KL(softmax(t/T) || softmax(z/T)) + (1 - alpha) CE(z, targets).",
        ("cross_entropy", "softmax"),
        (
            "Look at the temperature: softening by T shrinks the soft term's gradient by 1/T^2, which the T^2 factor puts back.",
            "dz = alpha T (q_s - q_t) / K + (1 - alpha) (softmax(z) - onehot) / K over the K kept rows.",
        ),
        PieceGrader(
            _spec(
                "distillation",
                "distillation",
                knowledge=c.know_distillation,
                edge=(
                    c.EdgeCase(
                        "logits of +-1000",
                        lambda rng: (
                            {"logits": rng.choice([-1000.0, 1000.0], (3, 4))},
                            {
                                "teacher_logits": rng.choice([-1000.0, 1000.0], (3, 4)),
                                "targets": rng.integers(0, 4, 3),
                                "temperature": 2.0,
                                "alpha": 0.5,
                            },
                        ),
                        "forward",
                        loops=True,
                    ),
                    _f32("distillation", 1),
                ),
            )
        ),
    ),
    Exercise(
        "bradley_terry",
        "Extensions",
        "the Bradley-Terry preference loss",
        _trio("nn.preference", "bradley_terry"),
        ("nn.preference", "nn.preference:bradley_terry_forward"),
        "d/dr of mean(-log sigmoid(r_chosen - r_rejected)).",
        ("activations",),
        (
            "Look at a wide margin: log(sigmoid(-1000)) is log(0) in float64; write -log sigmoid(d) as softplus(-d).",
            "dL/dr_chosen = -sigmoid(-d) / B and dL/dr_rejected = +sigmoid(-d) / B, d = r_chosen - r_rejected.",
        ),
        PieceGrader(
            _spec(
                "bradley_terry",
                "bradley_terry",
                knowledge=c.know_pairs,
                edge=(c.big_margins(("r_chosen", "r_rejected")), _f32("bradley_terry", 1)),
            )
        ),
    ),
    Exercise(
        "dpo",
        "Extensions",
        "direct preference optimisation",
        _trio("nn.preference", "dpo"),
        ("nn.preference:dpo_forward", "nn.preference:dpo_backward"),
        "The DPO loss mean softplus(-beta (margin of the policy - margin of the reference)) and its four gradients.",
        ("bradley_terry",),
        (
            "Look at beta: it multiplies the margin inside the softplus, so it multiplies the gradient too.",
            "z = beta ((lw - rw) - (ll - rl)); dL/dz = -sigmoid(-z) / B; dlw = beta dz, dll = -beta dz, drw = -dlw, drl = -dll.",
        ),
        PieceGrader(
            _spec(
                "dpo",
                "dpo",
                knowledge=c.know_pairs,
                edge=(c.big_margins(("logp_w", "logp_l", "ref_w", "ref_l"), beta=0.5), _f32("dpo", 1)),
            )
        ),
    ),
)

_BY_NAME = {e.name: e for e in EXERCISES}


def names() -> list[str]:
    return [e.name for e in EXERCISES]


def get(name: str) -> Exercise:
    """The exercise called `name`; UnknownNameError with a did-you-mean and the known names otherwise."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    close = difflib.get_close_matches(name.lower().replace("-", "_"), list(_BY_NAME), 1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UnknownNameError(f"no exercise named {name!r}{hint}; the exercises: {', '.join(_BY_NAME)}")
