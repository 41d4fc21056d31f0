"""Sampling from a trained GPT: `twograd sample --run DIR`.

One token at a time: the logits of the last position (the context cropped to the model's),
divided by the temperature, cut to the k most likely (`top_k`), softmaxed, and one token drawn

    p_i = exp(z_i / T) / sum_j exp(z_j / T)     over the top-k logits z (T = temperature)

Temperature 0 means greedy: the argmax, no randomness. What a sample is depends on the task:

* copy / reverse: the prompt is the question (exactly L tokens, space-separated); the model
  writes the L answer tokens after the separator;
* chars: the prompt's text is continued for `max_tokens` characters;
* lines: each sample is one new document (a line), started from the prompt, ended by the
  boundary token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InputError
from engine.files import NotARegularFile
from models.data.sequences import BOUNDARY, Vocabulary
from models.reports import Shown
from models.training.runs import load_run
from models.zoo.gpt import GPT, GPTConfig
from nn.checkpoint import CheckpointError

#: samples one call writes, and tokens in each: far above any use, and a bound on the time
#: (each token is a forward pass: `sample --n 1e20` ran until it was killed).
MAX_SAMPLES = 1_000
MAX_TOKENS = 10_000
#: the softmax temperature: 0 is greedy, and so is, in effect, any tiny one (next_token takes the
#: argmax where z / T would overflow); above MAX_TEMPERATURE every distribution is uniform to three digits.
MIN_TEMPERATURE = 0.0
MAX_TEMPERATURE = 100.0


def check_sampling(n: int, max_tokens: int | None, temperature: float | None, top_k: int | None) -> None:
    """InputError naming the first setting out of its range (see the caps above)."""

    def whole(name: str, value: Any, high: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= high:
            raise InputError(f"{name} must be a whole number in 1 .. {high:,}, got {value!r}")

    whole("n", n, MAX_SAMPLES)
    if max_tokens is not None:
        whole("max_tokens", max_tokens, MAX_TOKENS)
    if top_k is not None:
        whole("top_k", top_k, 10**9)
    if temperature is not None:
        ok = (
            isinstance(temperature, (int, float))
            and not isinstance(temperature, bool)
            and MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE
        )
        if not ok:
            raise InputError(
                f"temperature must be in {MIN_TEMPERATURE:g} .. {MAX_TEMPERATURE:g} (0 is greedy), got {temperature!r}"
            )


def next_token(logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator) -> int:
    """One token from the last position's logits (V,) (see the module docstring)."""
    z = logits.astype(np.float64)
    if temperature == 0:
        return int(np.argmax(z))
    if top_k is not None and top_k < z.shape[0]:
        cut = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= cut, z, -np.inf)
    with np.errstate(over="ignore"):  # a tiny T (1e-320) sends every gap to -inf, whose exp is 0: the limit is argmax
        z = (z - z.max()) / temperature
    p = np.exp(z)
    p /= p.sum()
    return int(rng.choice(z.shape[0], p=p))


def generate(
    model: GPT,
    ids: list[int],
    max_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    rng: np.random.Generator | None = None,
    stop: int | None = None,
) -> list[int]:
    """`ids` continued by up to `max_tokens` tokens (stopping after `stop`, if given); returns the new ones."""
    rng = rng if rng is not None else np.random.default_rng()
    context = model.config.context
    out: list[int] = []
    for _ in range(max_tokens):
        window = (ids + out)[-context:]
        logits = model.logits(np.array([window], dtype=np.int64))[0, -1]  # (V,)
        token = next_token(logits, temperature, top_k, rng)
        out.append(token)
        if stop is not None and token == stop:
            break
    return out


@dataclass(repr=False)
class Samples(Shown):
    """What `sample` returned: `samples` (a list of strings), `text()` (what `twograd sample`
    prints) and `to_json()` (its --json)."""

    task: str
    prompt: str
    samples: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    prompt_given: bool = True  # False: the prompt is the default (a held-out question, a newline, nothing)

    def text(self) -> str:
        """What `twograd sample` prints: one line per answer or line (the default question shown
        beside its answer, an empty line as "(empty)"); chars samples, which hold newlines of their
        own, under a "--- sample i of n ---" header each when there are several."""
        if self.task in ("copy", "reverse"):
            return "\n".join(s if self.prompt_given else f"{self.prompt} -> {s}" for s in self.samples)
        if self.task == "lines":
            return "\n".join(s or "(empty)" for s in self.samples)
        if len(self.samples) == 1:
            return self.samples[0]
        n = len(self.samples)
        return "\n".join(f"--- sample {i} of {n} ---\n{s}" for i, s in enumerate(self.samples, 1))

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "prompt": self.prompt, "samples": self.samples, **self.settings}

    @property
    def metrics(self) -> dict[str, Any]:
        """How many samples and with what settings (sampling measures nothing)."""
        return {"n": len(self.samples), **self.settings}

    def html_title(self) -> str:
        return f"twograd sample ({self.task})" + (f": prompt {self.prompt!r}" if self.prompt else "")

    def html_rows(self) -> tuple[list[str], list[list[Any]]]:
        return ["", "sample"], [[str(i), s] for i, s in enumerate(self.samples, 1)]


@dataclass(frozen=True)
class RecordedVocabulary:
    """The vocabulary a chars or lines run recorded in its checkpoint, standing in for the data
    set when its text file has since moved or changed: sampling needs nothing else."""

    vocab: Vocabulary


def load_gpt_run(folder: str | Path) -> tuple[Any, GPT, Any]:
    """(task, model with the run's weights, data set) of a GPT run folder; InputError for another kind."""
    from models.training.tasks import get_task

    saved = load_run(folder, "--run")
    task = get_task(saved.task)
    if task.kind != "gpt" or saved.model_kind != "gpt":
        raise InputError(
            f"--run {saved.folder}: a {saved.model_kind} run of {saved.task}; sampling needs a GPT task "
            "(copy, reverse, chars, lines)"
        )
    config = GPTConfig(**saved.model_config["gpt"]).validate()
    task.check_size(saved.model_config, saved.train_config, "manual")  # bounded before anything is built
    model = GPT(config)
    try:
        model.load_state_dict(saved.params)
    except ValueError as err:
        raise CheckpointError(f"--run {saved.folder}: cannot load the weights: {err}") from None
    # A diverged run keeps its last state with a finite loss, but weights that large can still
    # overflow in the forward pass: say so once, instead of numpy's warnings and a piece's message.
    window = np.zeros((1, config.context), dtype=np.int64)
    with np.errstate(all="ignore"):
        try:
            finite = bool(np.isfinite(model.logits(window)).all())
        except ValueError:  # a piece refusing the non-finite values it was handed
            finite = False
    if not finite:
        raise CheckpointError(
            f"--run {saved.folder}: the weights of this {saved.status} run (step {saved.state.step}) "
            "give non-finite logits, so there is nothing to sample; train again with a smaller --lr"
        )
    data_config = saved.model_config["data"]
    try:
        return task, model, task.load_data(data_config, config.seed)
    except NotARegularFile as err:  # training reads only files: such a record was edited, not trained
        raise CheckpointError(
            f"--run {saved.folder}: damaged checkpoint: the training text it names {err}".replace("--data ", "", 1)
        ) from None
    except InputError as err:
        tokens = saved.extra.get("vocab")
        if task.name not in ("chars", "lines"):  # copy / reverse generate their data: no file to miss
            raise
        if not (
            isinstance(tokens, list)
            and tokens
            and all(isinstance(t, str) for t in tokens)
            and len(tokens) == config.vocab_size
        ):
            raise InputError(
                f"--run {saved.folder}: its training text is needed for the vocabulary and cannot be read "
                f"({err}); runs saved by this twograd record the vocabulary and sample without it"
            ) from None
        return task, model, RecordedVocabulary(Vocabulary(tuple(tokens)))


def sample_run(
    folder: str | Path,
    prompt: str | None = None,
    n: int = 1,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    seed: int = 0,
) -> Samples:
    """Samples from the GPT saved in `folder` (see the module docstring for what a sample is)."""
    check_sampling(n, max_tokens, temperature, top_k)
    task, model, data = load_gpt_run(folder)
    rng = np.random.default_rng(seed)
    vocab = data.vocab
    prompt_given = prompt is not None
    if task.name in ("copy", "reverse"):
        temperature = 0.0 if temperature is None else temperature
        if prompt is None:
            prompt = vocab.decode(data.test_x[0])
        ids = vocab.encode(prompt)
        if len(ids) != data.length or data.n_symbols in ids:
            raise InputError(
                f"a {task.name} model of length {data.length} answers exactly {data.length} symbols "
                f"(0 .. {data.n_symbols - 1}, space-separated), got {prompt!r}"
            )
        answers = [
            vocab.decode(generate(model, ids + [data.n_symbols], data.length, temperature, top_k, rng))
            for _ in range(n)
        ]
        result = Samples(task.name, prompt, answers)
    elif task.name == "lines":
        temperature = 1.0 if temperature is None else temperature
        prompt = prompt or ""
        if BOUNDARY in prompt:
            raise InputError("a lines prompt is the start of one line: it holds no newline")
        ids = [0] + vocab.encode(prompt)
        if len(ids) > model.config.context:
            raise InputError(
                f"the prompt has {len(ids) - 1} characters; the model reads at most {model.config.context - 1}"
            )
        limit = max_tokens or model.config.context
        lines = []
        for _ in range(n):
            new = generate(model, ids, limit, temperature, top_k, rng, stop=0)
            lines.append(prompt + vocab.decode([t for t in new if t != 0]))
        result = Samples(task.name, prompt, lines)
    else:
        assert task.name == "chars", task.name
        temperature = 1.0 if temperature is None else temperature
        prompt = prompt if prompt is not None else "\n"
        ids = vocab.encode(prompt)
        if not ids:
            raise InputError("the prompt is empty: give at least one character to continue")
        if len(ids) > model.config.context:
            raise InputError(f"the prompt has {len(ids)} characters; the model reads at most {model.config.context}")
        texts = [
            prompt + vocab.decode(generate(model, ids, max_tokens or 200, temperature, top_k, rng)) for _ in range(n)
        ]
        result = Samples(task.name, prompt, texts)
    result.settings = {"n": n, "temperature": temperature, "top_k": top_k, "seed": seed}
    result.prompt_given = prompt_given
    return result
