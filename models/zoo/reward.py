"""The toy world of alignment: made-up names, a hidden true reward, preference pairs and a reward model.

* `make_names(n, seed)`: pronounceable name-like strings from a fixed syllable distribution
  (onset consonant, vowel, optional closing consonant; one to four syllables), seeded, so the
  reference policy's training text is generated here and nothing is downloaded.
* `true_reward(name)`: 1 when the name ends in a vowel and has at most `MAX_LETTERS` letters,
  else 0. It is easy to state and to measure, and hidden from every learner: it labels the
  preference pairs and scores the results, nothing else. Its maximum is 1 (`TRUE_REWARD_MAX`).
* `preference_pairs(names, rng)`: names (sampled from the reference policy) paired at random;
  a pair whose two names have the same true reward says nothing and is dropped; in the others
  the better name is `chosen`.
* `RewardModel`: an MLP over pooled features, the letters' counts (the sum of one-hot
  vectors over the name: order is pooled away), with one scalar output, trained with the
  Bradley-Terry loss (nn.preference) on the shared trainer. It sees how many of each letter
  a name has, hence its length, but not which letter comes last: a proxy of the true reward,
  good on the names the reference writes, and exploitable far from them.
"""

# Shape legend: N names, F features (one per letter), P pairs, H hidden units.

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.errors import InputError
from models.zoo.mlp import MLP, MLPConfig
from nn.preference import bradley_terry_backward, bradley_terry_forward

VOWELS = "aeiou"
#: onset consonants and their weights (a fixed distribution: the world's "language").
ONSETS = "bdfghklmnprstvz"
ONSET_WEIGHTS = (3, 3, 1, 1, 2, 3, 3, 4, 4, 2, 4, 3, 3, 1, 1)
CODAS = "lmnrsk"
SYLLABLES = (1, 2, 3, 4)
SYLLABLE_WEIGHTS = (0.10, 0.45, 0.35, 0.10)
ONSET_P = 0.9  # a syllable starts with a consonant
CODA_P = 0.35  # a syllable ends with one
MAX_LETTERS = 6  # the true reward's length limit
TRUE_REWARD_MAX = 1.0
ALPHABET = "".join(sorted(set(VOWELS + ONSETS + CODAS)))


def make_names(n: int, seed: int) -> list[str]:
    """n names from the syllable distribution (seeded; repeats allowed, as in a real list of names)."""
    if n < 1:
        raise InputError(f"make_names: n must be >= 1, got {n}")
    rng = np.random.default_rng([seed, 13])
    onset_p = np.asarray(ONSET_WEIGHTS, dtype=np.float64) / sum(ONSET_WEIGHTS)
    names = []
    for _ in range(n):
        parts = []
        for _ in range(int(rng.choice(SYLLABLES, p=SYLLABLE_WEIGHTS))):
            if rng.random() < ONSET_P:
                parts.append(ONSETS[int(rng.choice(len(ONSETS), p=onset_p))])
            parts.append(VOWELS[int(rng.integers(len(VOWELS)))])
            if rng.random() < CODA_P:
                parts.append(CODAS[int(rng.integers(len(CODAS)))])
        names.append("".join(parts))
    return names


def true_reward(name: str) -> float:
    """1.0 if the name ends in a vowel and has at most MAX_LETTERS letters, else 0.0 (the hidden preference)."""
    return float(0 < len(name) <= MAX_LETTERS and name[-1] in VOWELS)


def true_rewards(names: Sequence[str]) -> np.ndarray:
    return np.array([true_reward(s) for s in names], dtype=np.float64)  # (N,)


def features(names: Sequence[str]) -> np.ndarray:
    """(N, F) letter counts: the one-hot vectors of a name's letters, summed (pooled over positions).
    A character outside the alphabet counts nowhere (the policy only writes the alphabet's letters)."""
    lookup = {c: i for i, c in enumerate(ALPHABET)}
    x = np.zeros((len(names), len(ALPHABET)))
    for row, name in enumerate(names):
        for c in name:
            if c in lookup:
                x[row, lookup[c]] += 1.0
    return x


@dataclass
class Pairs:
    """Preference pairs: chosen[i] is preferred to rejected[i] under the true reward."""

    chosen: list[str]
    rejected: list[str]

    def __len__(self) -> int:
        return len(self.chosen)

    def take(self, rows: Sequence[int] | np.ndarray) -> Pairs:
        return Pairs([self.chosen[i] for i in rows], [self.rejected[i] for i in rows])


def preference_pairs(names: Sequence[str], rng: np.random.Generator) -> Pairs:
    """Pair the names at random (each used once); keep the pairs whose true rewards differ, the better one chosen."""
    order = rng.permutation(len(names))
    chosen, rejected = [], []
    for a, b in zip(order[0::2], order[1::2]):
        ra, rb = true_reward(names[a]), true_reward(names[b])
        if ra != rb:
            chosen.append(names[a] if ra > rb else names[b])
            rejected.append(names[b] if ra > rb else names[a])
    if len(chosen) < 2:
        raise InputError(f"preference_pairs: only {len(chosen)} informative pairs among {len(names)} names")
    return Pairs(chosen, rejected)


def split_pairs(pairs: Pairs, held_out: float, rng: np.random.Generator) -> tuple[Pairs, Pairs]:
    """(train, held-out): a random `held_out` fraction of the pairs is kept for measuring accuracy."""
    order = rng.permutation(len(pairs))
    n_val = max(1, int(round(len(pairs) * held_out)))
    return pairs.take(order[n_val:]), pairs.take(order[:n_val])


class RewardModel:
    """r(name) = MLP(letter counts): one scalar per name (see the module docstring)."""

    def __init__(self, hidden: int = 32, seed: int = 0) -> None:
        self.mlp = MLP(MLPConfig(sizes=[len(ALPHABET), hidden, 1], activation="relu", loss="mse", seed=seed))

    def __call__(self, names: Sequence[str]) -> np.ndarray:
        return self.mlp.forward(features(names))[:, 0]  # (N,)


def pairwise_accuracy(model: RewardModel, pairs: Pairs) -> float:
    """The fraction of pairs the model orders as the true reward does (a tie counts half)."""
    d = model(pairs.chosen) - model(pairs.rejected)
    return float(np.mean((d > 0) + 0.5 * (d == 0)))


@dataclass
class BradleyTerryObjective:
    """Bradley-Terry on preference pairs (see models.training.trainer.Objective); a batch is rows of the training pairs."""

    reward: RewardModel
    train: Pairs
    val: Pairs
    batch_size: int
    _x: tuple[np.ndarray, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.model = self.reward.mlp
        self._x = (features(self.train.chosen), features(self.train.rejected))  # (P, F) each

    def batches(self, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(len(self.train), size=min(self.batch_size, len(self.train)), replace=False)

    def loss_and_grad(self, rows: np.ndarray) -> float:
        xc, xr = self._x[0][rows], self._x[1][rows]
        B = len(rows)
        r = self.model.forward(np.concatenate([xc, xr]))[:, 0]  # (2B,): chosen, then rejected
        loss, cache = bradley_terry_forward(r[:B], r[B:])
        dc, dr = bradley_terry_backward(np.ones(()), cache)
        self.model.backward(np.concatenate([dc, dr])[:, None])
        return float(loss)

    def evaluate(self) -> dict[str, float]:
        return {
            "train_accuracy": pairwise_accuracy(self.reward, self.train),
            "val_accuracy": pairwise_accuracy(self.reward, self.val),
        }


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) of the least-squares line y ~ a x + b (a = 0 when x is constant)."""
    var = float(np.var(x))
    a = float(np.mean((x - x.mean()) * (y - y.mean())) / var) if var > 0 else 0.0
    return a, float(y.mean() - a * x.mean())
