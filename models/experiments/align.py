"""Alignment in a toy world: a reward model from pairwise preferences, then three ways to improve a
policy against it, side by side, with the true reward watching (models/zoo/reward.py holds the world).

    1. reference policy  pi_ref: a tiny GPT trained on generated names (the `lines` setup)
    2. preference pairs  sampled from pi_ref, labelled by the hidden true reward, 20% held out
    3. reward model      r: an MLP over letter counts, Bradley-Terry loss (nn.preference)
    4. best-of-n         draw n names from pi_ref, keep the one r likes best (no training)
       REINFORCE + KL    maximise E_pi[r] - beta KL(pi || pi_ref) by the score-function gradient
                         (nn.preference.reinforce_kl: leave-one-out baseline, the KL estimated on
                         the sampled tokens and folded into the reward)
       DPO               fit pi directly to the pairs (nn.preference.dpo), no reward model used

Every gradient reaches the GPT the same way: a loss of token log-probabilities gives dlogp (B, T);
`token_logprobs_backward` turns it into dlogits (a per-token weighted cross-entropy on the
sequences' own tokens); `gpt_backward_logits` takes that to the parameters (the GPT's manual
backward, checked three ways as the `gpt` piece).

What each policy is scored by, on `EVAL_SAMPLES` fresh samples:

* true_reward: the hidden reward's mean (max `TRUE_REWARD_MAX`);
* learned_reward: the reward model's mean score, put on the true reward's scale by the
  least-squares line fitted on reference samples (so the two agree on pi_ref, and any gap
  that opens later is the reward model being wrong where the policy went);
* kl: KL(pi || pi_ref) in nats per name, the mean over samples from pi of
  log pi(y) - log pi_ref(y) (unbiased). For best-of-n it is the analytic
  log n - (n - 1)/n (exact when the n draws are distinct, an upper bound otherwise);
* distinct_per_100: how many different names are among 100 samples (diversity).
"""

# Shape legend: B names in a batch, T positions (<= context), V vocabulary (letters + boundary).

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InputError
from models.data.sequences import IGNORE, LineDocuments
from models.reports import Shown
from models.training.runs import prepare_out, release_folder
from models.training.trainer import TrainConfig, Trainer, run_to_end
from models.zoo.gpt import GPT, GPTConfig, gpt_backward_logits, gpt_forward
from models.zoo.reward import (
    TRUE_REWARD_MAX,
    BradleyTerryObjective,
    Pairs,
    RewardModel,
    fit_line,
    make_names,
    pairwise_accuracy,
    preference_pairs,
    split_pairs,
    true_rewards,
)
from nn.preference import (
    dpo_backward,
    dpo_forward,
    reinforce_kl_backward,
    reinforce_kl_forward,
    token_logprobs_backward,
    token_logprobs_forward,
)

METHODS = ("bestofn", "reinforce", "dpo")
N_NAMES = 3000  # the reference policy's training names
N_PAIR_SAMPLES = 3000  # names sampled from pi_ref to be paired (about half the pairs are informative)
HELD_OUT = 0.2  # of the pairs, for the reward model's accuracy
EVAL_SAMPLES = 400  # samples per policy evaluation
CURVE_SAMPLES = 128  # samples per point of the per-step curves
BEST_OF = 16  # n of best-of-n
DPO_BETA = 0.1  # DPO's own beta (the strength of its implicit KL leash)
GAP_WIDENED = 0.1  # learned minus true reward grew by more than this (true reward units): hacking
RESULT_FILE = "align.json"


@dataclass(frozen=True)
class AlignConfig:
    """Everything that defines one alignment run (saved in its folder)."""

    method: str = "all"  # bestofn | reinforce | dpo | all
    kl: float = 0.2  # beta of REINFORCE's KL penalty (0: no leash)
    steps: int = 150  # policy updates of REINFORCE and of DPO
    seed: int = 0
    ref_steps: int = 800  # the reference GPT's training steps
    rm_steps: int = 600  # the reward model's training steps
    batch_size: int = 64  # names per REINFORCE step, pairs per DPO step
    lr: float = 1e-3  # the policy's learning rate (Adam)
    best_of: int = BEST_OF
    dpo_beta: float = DPO_BETA
    pair_samples: int = N_PAIR_SAMPLES  # names drawn from pi_ref to be paired
    eval_samples: int = EVAL_SAMPLES  # samples per policy for the table

    def validate(self) -> AlignConfig:
        if self.method not in METHODS + ("all",):
            raise InputError(f"align: unknown method {self.method!r}; choose one of: {', '.join(METHODS + ('all',))}")
        if not (isinstance(self.kl, (int, float)) and math.isfinite(self.kl) and self.kl >= 0):
            raise InputError(f"align: --kl must be a finite number >= 0, got {self.kl!r}")
        for name in ("steps", "ref_steps", "rm_steps", "batch_size", "best_of", "pair_samples", "eval_samples"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (2 if name in ("batch_size", "best_of") else 1)
            ):
                raise InputError(
                    f"align: {name} must be a whole number >= {2 if name in ('batch_size', 'best_of') else 1}, got {value!r}"
                )
        return self

    def methods(self) -> tuple[str, ...]:
        return METHODS if self.method == "all" else (self.method,)


# ---------------------------------------------------------------------------- the policy's sequences
@dataclass
class Batch:
    """Sampled (or given) names as the GPT reads them: idx = boundary + tokens, targets = tokens + boundary."""

    idx: np.ndarray  # (B, T) int64
    targets: np.ndarray  # (B, T) int64, IGNORE after the end
    texts: list[str]

    @property
    def mask(self) -> np.ndarray:
        return (self.targets != IGNORE).astype(np.float64)  # (B, T)


def encode(data: LineDocuments, texts: list[str], T: int) -> Batch:
    """Names as (idx, targets) padded to T positions; a name longer than the context is cut (no end token)."""
    docs = [np.array([0, *data.vocab.encode(t), 0], dtype=np.int64) for t in texts]
    idx, targets = data.pack(docs, T)
    return Batch(idx, targets, list(texts))


def sample_names(model: GPT, data: LineDocuments, n: int, rng: np.random.Generator) -> Batch:
    """n names from the GPT (temperature 1), drawn in parallel: each row stops at its boundary token
    or at the context's end."""
    T = model.config.context
    idx = np.zeros((n, 1), dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    for _ in range(T):
        logits = model.logits(idx)[:, -1].astype(np.float64)  # (n, V)
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        nxt = (p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(max=p.shape[1] - 1)  # inverse-CDF draw
        nxt = np.where(done, 0, nxt)
        idx = np.concatenate([idx, nxt[:, None]], axis=1)
        done |= nxt == 0
        if done.all():
            break
    texts = []
    for row in idx[:, 1:]:
        end = np.flatnonzero(row == 0)
        texts.append(data.vocab.decode(row[: end[0]] if len(end) else row))
    return encode(data, texts, T)


def sequence_logprobs(model: GPT, batch: Batch) -> np.ndarray:
    """log pi(y) (B,): the sum of the tokens' log-probabilities (the end token included)."""
    logp, _ = token_logprobs_forward(model.logits(batch.idx), targets=batch.targets)
    return logp.astype(np.float64).sum(axis=1)


def token_logprobs_with_cache(model: GPT, batch: Batch) -> tuple[np.ndarray, Any, Any]:
    """(logp (B, T), the GPT's cache, token_logprobs' cache): the forward that `add_policy_grad` undoes."""
    _, gpt_cache = gpt_forward(*model.param_list(), idx=batch.idx, targets=batch.targets, **model.config.static())
    logp, tlp_cache = token_logprobs_forward(gpt_cache.logits, targets=batch.targets)
    return logp, gpt_cache, tlp_cache


def add_policy_grad(model: GPT, dlogp: np.ndarray, gpt_cache: Any, tlp_cache: Any) -> None:
    """Add dL/dtheta into the model's grads from dL/dlogp (B, T): token_logprobs' backward, then the GPT's."""
    (dlogits,) = token_logprobs_backward(dlogp, tlp_cache)  # (B, T, V)
    for acc, g in zip(model.grad_list(), gpt_backward_logits(dlogits, gpt_cache)):
        acc += g


# ---------------------------------------------------------------------------- scoring a policy
@dataclass
class Judge:
    """Scores names two ways from one reward model r:

    * `policy_reward`: what the learners optimise, r standardised on reference samples,
      (r - mean) / std, so that beta reads "nats of KL worth one reference standard deviation
      of reward" (no true reward is used for it);
    * `learned`: for the report only, r on the true reward's scale by the least-squares line
      fitted against the true reward on reference samples.
    """

    reward: RewardModel
    a: float = 1.0
    b: float = 0.0
    mean: float = 0.0
    std: float = 1.0

    def learned(self, texts: list[str]) -> np.ndarray:
        return self.a * self.reward(texts) + self.b  # (N,)

    def policy_reward(self, texts: list[str]) -> np.ndarray:
        return (self.reward(texts) - self.mean) / self.std  # (N,)

    def calibrate(self, texts: list[str]) -> Judge:
        r = self.reward(texts)
        self.mean, self.std = float(r.mean()), float(r.std()) or 1.0
        self.a, self.b = fit_line(r, true_rewards(texts))
        return self


def score(judge: Judge, texts: list[str], kl: float) -> dict[str, float]:
    """true_reward, learned_reward, kl and distinct_per_100 of a set of samples."""
    return {
        "true_reward": float(true_rewards(texts).mean()),
        "learned_reward": float(judge.learned(texts).mean()),
        "kl": float(kl),
        "distinct_per_100": len(set(texts[:100])) * 100.0 / min(100, len(texts)),
    }


def policy_score(
    policy: GPT, ref: GPT, data: LineDocuments, judge: Judge, n: int, rng: np.random.Generator
) -> tuple[dict[str, float], list[str]]:
    batch = sample_names(policy, data, n, rng)
    kl = float(np.mean(sequence_logprobs(policy, batch) - sequence_logprobs(ref, batch)))
    return score(judge, batch.texts, kl), batch.texts


def best_of_n(ref: GPT, data: LineDocuments, judge: Judge, n: int, count: int, rng: np.random.Generator) -> list[str]:
    """`count` names, each the reward model's favourite of n fresh draws from the reference."""
    texts = sample_names(ref, data, n * count, rng).texts
    scores = judge.reward(texts).reshape(count, n)
    return [texts[g * n + int(i)] for g, i in enumerate(scores.argmax(axis=1))]


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || pi_ref) = log n - (n - 1)/n for distinct draws (an upper bound in general)."""
    return math.log(n) - (n - 1) / n


# ---------------------------------------------------------------------------- the two trained methods
def _copy_gpt(model: GPT) -> GPT:
    twin = GPT(model.config)
    twin.flat_params[:] = model.flat_params
    return twin


@dataclass
class ReinforceObjective:
    """REINFORCE with a KL penalty (see nn.preference.reinforce_kl): a batch is B names drawn from the
    current policy with the trainer's generator; each step records its batch's statistics."""

    model: GPT
    ref: GPT
    data: LineDocuments
    judge: Judge
    beta: float
    batch_size: int
    curve: list[dict[str, float]] = field(default_factory=list)

    def batches(self, rng: np.random.Generator) -> Batch:
        return sample_names(self.model, self.data, self.batch_size, rng)

    def loss_and_grad(self, batch: Batch) -> float:
        logp, gpt_cache, tlp_cache = token_logprobs_with_cache(self.model, batch)
        ref_logp, _ = token_logprobs_forward(self.ref.logits(batch.idx), targets=batch.targets)
        rewards = self.judge.policy_reward(batch.texts)  # the reward model only: the policy never sees the truth
        loss, cache = reinforce_kl_forward(
            logp, sample_logp=logp, ref_logp=ref_logp, rewards=rewards, mask=batch.mask, beta=self.beta
        )
        (dlogp,) = reinforce_kl_backward(np.ones(()), cache)
        add_policy_grad(self.model, dlogp, gpt_cache, tlp_cache)
        kl = float((batch.mask * (logp - ref_logp)).sum(axis=1).mean())
        self.curve.append({"step": len(self.curve) + 1, **score(self.judge, batch.texts, kl)})
        return float(loss)

    def evaluate(self) -> dict[str, float]:
        return dict(self.curve[-1]) if self.curve else {}


@dataclass
class DPOObjective:
    """DPO on the training pairs (see nn.preference.dpo): a batch is rows of the pairs."""

    model: GPT
    ref: GPT
    data: LineDocuments
    judge: Judge
    pairs: Pairs
    beta: float
    batch_size: int
    curve: list[dict[str, float]] = field(default_factory=list)
    steps_done: int = 0
    eval_rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    _w: Batch = field(init=False)
    _l: Batch = field(init=False)
    _ref: tuple[np.ndarray, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        T = self.model.config.context
        self._w, self._l = encode(self.data, self.pairs.chosen, T), encode(self.data, self.pairs.rejected, T)
        self._ref = (sequence_logprobs(self.ref, self._w), sequence_logprobs(self.ref, self._l))  # constants

    def batches(self, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(len(self.pairs), size=min(self.batch_size, len(self.pairs)), replace=False)

    def loss_and_grad(self, rows: np.ndarray) -> float:
        B = len(rows)
        both = Batch(
            np.concatenate([self._w.idx[rows], self._l.idx[rows]]),
            np.concatenate([self._w.targets[rows], self._l.targets[rows]]),
            [],
        )
        logp, gpt_cache, tlp_cache = token_logprobs_with_cache(self.model, both)
        seq = logp.astype(np.float64).sum(axis=1)  # (2B,): chosen, then rejected
        loss, cache = dpo_forward(seq[:B], seq[B:], self._ref[0][rows], self._ref[1][rows], beta=self.beta)
        dw, dl, _, _ = dpo_backward(np.ones(()), cache)
        add_policy_grad(self.model, np.concatenate([dw, dl])[:, None] * both.mask, gpt_cache, tlp_cache)
        self.steps_done += 1
        return float(loss)

    def evaluate(self) -> dict[str, float]:
        metrics, _ = policy_score(self.model, self.ref, self.data, self.judge, CURVE_SAMPLES, self.eval_rng)
        self.curve.append({"step": self.steps_done, **metrics})
        return metrics


# ---------------------------------------------------------------------------- the whole run
@dataclass(repr=False)
class AlignResult(Shown):
    """What an alignment run found: the reward model's accuracy, each policy's true and learned
    reward, KL and diversity (`policies`), the reward-hacking check, samples, and the files written."""

    config: AlignConfig
    reward_model_accuracy: float
    reward_model_train_accuracy: float
    n_pairs: dict[str, int]
    policies: dict[str, dict[str, float]]  # reference, bestofn, reinforce, dpo -> scores
    curves: dict[str, list[dict[str, float]]]
    rm_curve: list[dict[str, float]]
    rm_losses: list[float]
    samples: dict[str, list[str]]
    hacking: dict[str, Any] | None
    seconds: float
    files: dict[str, str] = field(default_factory=dict)  # what `save_align` wrote, when the run was saved

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.__dict__,
            "true_reward_max": TRUE_REWARD_MAX,
            "reward_model_accuracy": self.reward_model_accuracy,
            "reward_model_train_accuracy": self.reward_model_train_accuracy,
            "pairs": self.n_pairs,
            "policies": self.policies,
            "reward_hacking": self.hacking,
            "samples": {k: v[:12] for k, v in self.samples.items()},
            "seconds": round(self.seconds, 2),
        }

    def summary(self) -> list[str]:
        rows = [
            f"reward model: held-out pairwise accuracy {self.reward_model_accuracy:.3f} "
            f"(train {self.reward_model_train_accuracy:.3f}; {self.n_pairs['train']} / {self.n_pairs['held_out']} pairs)",
            f"{'policy':<18} {'true reward':>11} {'learned':>8} {'KL (nats)':>10} {'distinct/100':>13}",
        ]
        labels = {
            "reference": "reference",
            "bestofn": f"best-of-{self.config.best_of}",
            "reinforce": f"REINFORCE+KL({self.config.kl:g})",
            "dpo": f"DPO(beta {self.config.dpo_beta:g})",
        }
        for name, s in self.policies.items():
            rows.append(
                f"{labels[name]:<18} {s['true_reward']:>11.3f} {s['learned_reward']:>8.3f} {s['kl']:>10.3f} "
                f"{s['distinct_per_100']:>13.0f}"
            )
        rows.append(
            f"true reward max {TRUE_REWARD_MAX:g}; learned reward is the reward model on the true reward's scale"
        )
        if self.hacking:
            h = self.hacking
            rows.append(
                f"reward hacking check (REINFORCE, kl {self.config.kl:g}): learned - true reward {h['gap_start']:+.3f} at the "
                f"start, {h['gap_end']:+.3f} at the end ({'widened' if h['gap_widened'] else 'did not widen'}); "
                f"distinct per 100 {h['distinct_start']:.0f} -> {h['distinct_end']:.0f}"
            )
        return rows

    @property
    def metrics(self) -> dict[str, float]:
        """The reward model's held-out accuracy and every policy's true reward."""
        return {
            "reward_model_accuracy": self.reward_model_accuracy,
            **{f"{name}_true_reward": s["true_reward"] for name, s in self.policies.items()},
        }

    def text(self) -> str:
        lines = self.summary()
        lines += [f"wrote {path}" if what != "pictures" else path for what, path in self.files.items()]
        return "\n".join(lines)

    def html_title(self) -> str:
        return f"twograd align: method {self.config.method}, seed {self.config.seed}"

    def html_rows(self) -> tuple[list[str], list[list[Any]]]:
        rows = [
            [
                name,
                f"{s['true_reward']:.3f}",
                f"{s['learned_reward']:.3f}",
                f"{s['kl']:.3f}",
                f"{s['distinct_per_100']:.0f}",
            ]
            for name, s in self.policies.items()
        ]
        return ["policy", "true reward", "learned reward", "KL (nats)", "distinct/100"], rows

    def plot_curves(self) -> tuple[dict[str, list[float]], bool]:
        return {f"{name} true reward": [r["true_reward"] for r in curve] for name, curve in self.curves.items()}, False


def _curve_means(curve: list[dict[str, float]], part: slice) -> dict[str, float]:
    rows = curve[part]
    return {k: float(np.mean([r[k] for r in rows])) for k in ("true_reward", "learned_reward", "distinct_per_100")}


def hacking_report(curve: list[dict[str, float]]) -> dict[str, Any]:
    """The gap between learned and true reward over REINFORCE's first and last tenth of steps
    (`gap_widened`: by more than 0.1 of the true reward's scale), and the diversity then."""
    k = max(1, len(curve) // 10)
    start, end = _curve_means(curve, slice(0, k)), _curve_means(curve, slice(-k, None))
    gap_start = start["learned_reward"] - start["true_reward"]
    gap_end = end["learned_reward"] - end["true_reward"]
    return {
        "steps_averaged": k,
        "learned_start": start["learned_reward"],
        "learned_end": end["learned_reward"],
        "true_start": start["true_reward"],
        "true_end": end["true_reward"],
        "gap_start": gap_start,
        "gap_end": gap_end,
        "gap_widened": bool(gap_end > gap_start + GAP_WIDENED),
        "true_fell": bool(end["true_reward"] < start["true_reward"]),
        "distinct_start": start["distinct_per_100"],
        "distinct_end": end["distinct_per_100"],
    }


def train_reference(config: AlignConfig, progress: bool) -> tuple[GPT, LineDocuments]:
    """pi_ref: the `lines` task's GPT on generated names, trained by the shared trainer."""
    from models.training.lm import LMObjective

    data = LineDocuments("\n".join(make_names(N_NAMES, config.seed)), name="names", seed=config.seed)
    model = GPT(
        GPTConfig(
            vocab_size=data.vocab.size,
            context=data.context,
            d_model=32,
            n_heads=4,
            n_layers=2,
            activation="gelu_tanh",
            seed=config.seed,
        )
    )
    objective = LMObjective(model, data, "manual", 32)
    run_to_end(
        Trainer(
            objective,
            objective.batches,
            TrainConfig(
                steps=config.ref_steps,
                batch_size=32,
                optimizer="adamw",
                lr=3e-3,
                warmup_steps=50,
                decay="cosine",
                min_lr=3e-4,
                weight_decay=0.01,
                grad_clip=1.0,
                seed=config.seed,
            ),
            progress=progress,
            desc="reference",
        )
    )
    return model, data


def run_align(config: AlignConfig, progress: bool = False, echo: Callable[[str], None] | None = None) -> AlignResult:
    """The whole pipeline (see the module docstring) for the config's method(s)."""
    config.validate()
    began = time.perf_counter()
    say = echo or (lambda line: None)
    rng = np.random.default_rng([config.seed, 17])
    ref, data = train_reference(config, progress)
    say(f"reference policy: GPT {model_size(ref)} trained {config.ref_steps} steps on {N_NAMES} generated names")

    names = sample_names(ref, data, config.pair_samples, rng).texts
    train_pairs, val_pairs = split_pairs(preference_pairs(names, rng), HELD_OUT, rng)
    reward = RewardModel(seed=config.seed)
    rm = BradleyTerryObjective(reward, train_pairs, val_pairs, batch_size=128)
    trainer = Trainer(
        rm,
        rm.batches,
        TrainConfig(
            steps=config.rm_steps,
            batch_size=128,
            optimizer="adam",
            lr=3e-3,
            eval_every=max(1, config.rm_steps // 20),
            seed=config.seed,
        ),
        progress=progress,
        desc="reward model",
    )
    outcome = run_to_end(trainer)
    accuracy = pairwise_accuracy(reward, val_pairs)
    say(f"reward model: held-out pairwise accuracy {accuracy:.3f} on {len(val_pairs)} pairs")
    judge = Judge(reward).calibrate(sample_names(ref, data, config.eval_samples, rng).texts)

    policies: dict[str, dict[str, float]] = {}
    samples: dict[str, list[str]] = {}
    policies["reference"], samples["reference"] = policy_score(ref, ref, data, judge, config.eval_samples, rng)
    curves: dict[str, list[dict[str, float]]] = {}
    hacking = None
    step_cfg: dict[str, Any] = dict(
        steps=config.steps,
        batch_size=config.batch_size,
        optimizer="adam",
        lr=config.lr,
        grad_clip=1.0,
        seed=config.seed,
    )
    for method in config.methods():
        if method == "bestofn":
            texts = best_of_n(ref, data, judge, config.best_of, config.eval_samples, rng)
            policies[method], samples[method] = score(judge, texts, best_of_n_kl(config.best_of)), texts
        elif method == "reinforce":
            policy = _copy_gpt(ref)
            obj = ReinforceObjective(policy, ref, data, judge, config.kl, config.batch_size)
            run_to_end(Trainer(obj, obj.batches, TrainConfig(**step_cfg), progress=progress, desc="REINFORCE"))
            policies[method], samples[method] = policy_score(policy, ref, data, judge, config.eval_samples, rng)
            curves[method] = obj.curve
            hacking = hacking_report(obj.curve)
        else:
            policy = _copy_gpt(ref)
            obj_d = DPOObjective(
                policy,
                ref,
                data,
                judge,
                train_pairs,
                config.dpo_beta,
                config.batch_size,
                eval_rng=np.random.default_rng([config.seed, 19]),
            )
            run_to_end(
                Trainer(
                    obj_d,
                    obj_d.batches,
                    TrainConfig(**step_cfg, eval_every=max(1, config.steps // 15)),
                    progress=progress,
                    desc="DPO",
                )
            )
            policies[method], samples[method] = policy_score(policy, ref, data, judge, config.eval_samples, rng)
            curves[method] = obj_d.curve
        say(f"{method}: true reward {policies[method]['true_reward']:.3f}, kl {policies[method]['kl']:.3f}")
    return AlignResult(
        config,
        accuracy,
        pairwise_accuracy(reward, train_pairs),
        {"train": len(train_pairs), "held_out": len(val_pairs)},
        policies,
        curves,
        outcome.state.evals,
        outcome.state.losses,
        samples,
        hacking,
        time.perf_counter() - began,
    )


def model_size(model: GPT) -> str:
    c = model.config
    return f"{c.n_layers}x{c.d_model}, {c.n_heads} heads, context {c.context}, {model.num_parameters():,} parameters"


def draw_align(result: AlignResult, folder: Path) -> dict[str, str]:
    """The pictures: the reward model's accuracy, the per-step curves, samples before and after."""
    from viz.plots import plot_align_curves, plot_loss, plot_samples

    folder = Path(folder)
    evals = result.rm_curve
    steps = [e["step"] for e in evals]
    files = {
        "reward_model": str(
            plot_loss(
                result.rm_losses,
                folder / "reward_model.png",
                metrics={
                    "train pairwise accuracy": (steps, [e["train_accuracy"] for e in evals]),
                    "held-out pairwise accuracy": (steps, [e["val_accuracy"] for e in evals]),
                },
                title="reward model: Bradley-Terry loss and pairwise accuracy",
            )
        )
    }
    if result.curves:
        files["curves"] = str(plot_align_curves(result.curves, folder / "curves.png", true_max=TRUE_REWARD_MAX))
    files["samples"] = str(plot_samples(result.samples, folder / "samples.png"))
    return files


def prepare_align_out(out: str | Path, overwrite: bool = False) -> Path:
    """The folder a new alignment run will be written to, checked before any work by the one --out rule
    (models.training.runs.prepare_out): never one that holds a run, another command's output or the
    user's files, unless `overwrite`, which removes what twograd wrote there before."""
    return prepare_out(
        out, overwrite=overwrite, resumable=False, command="align"
    )  # claimed until release_folder or exit


def align(
    config: AlignConfig,
    out: str | Path | None = None,
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> AlignResult:
    """One alignment run; with `out`, the folder is checked first (never one that holds a run) and
    align.json and the pictures are written there (`result.files`)."""
    config.validate()
    folder = prepare_align_out(out, overwrite) if out is not None else None
    try:
        result = run_align(config, progress=progress, echo=echo)
        if folder is not None:
            result.files = save_align(result, folder)
    finally:
        if folder is not None:
            release_folder(folder)
    return result


def save_align(result: AlignResult, folder: Path, pictures: bool = True) -> dict[str, str]:
    """Write align.json (the JSON report, with the per-step curves) and the pictures into the folder."""
    import json

    from engine.atomic import atomic_write
    from models.training.runs import finite_or_none

    files: dict[str, str] = {}
    if pictures:
        try:
            files = draw_align(result, folder)
        except ImportError as err:  # viz.plots.PlotsUnavailable: the report is still written
            files = {"pictures": f"not drawn: {err}"}
    report = {**result.to_json(), "curves": result.curves, "reward_model_curve": result.rm_curve, "files": files}
    path = folder / RESULT_FILE
    atomic_write(path, (json.dumps(finite_or_none(report), indent=1, allow_nan=False) + "\n").encode("utf-8"))
    return {"report": str(path), **files}
