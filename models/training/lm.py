"""Language-model tasks: a GPT (models/zoo/gpt.py) learns copy, reverse, chars or lines (models/data/sequences.py).

Each `SequenceTask` is one row of the task table (models/training/tasks.py). Its model config is
JSON-able and holds two parts, so that a run folder rebuilds exactly the same thing:

    {"gpt": GPTConfig fields, "data": what the data is (the task's settings, or a file and its sha256)}

The objective is next-token cross-entropy on (idx, targets) batches drawn from the trainer's
generator; the evaluation reports the held-out loss in nats per token (`val_loss`), and

* copy / reverse: `test_exact_accuracy`, the fraction of held-out questions whose whole answer
  the model gets right (greedy). Under teacher forcing every answer token is the argmax
  exactly when greedy decoding reproduces the answer, so one forward pass measures it;
* chars: `unigram_val_loss`, the add-one unigram model's held-out loss, the floor to beat.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InputError
from models.data.sequences import IGNORE, CharText, DigitSequences, LineDocuments, bundled_text, read_text
from models.training.learner import COMPOSED_NOTE
from models.training.trainer import Setup, TrainConfig, TrainState
from models.zoo.gpt import GPT, GPTConfig, count_parameters
from models.zoo.kernels import Kernels
from nn.losses import sequence_cross_entropy_forward

#: refuse larger models: parameters, gradient and AdamW's two moments (4 float64 vectors, 1.6 GB).
MAX_PARAMETERS = 50_000_000
#: refuse steps holding more than this many activations (rows of B T C and the attention's B H T^2
#: per block, roughly; 4 GB of float64).
MAX_ACTIVATIONS = 500_000_000
#: held-out windows (chars) or documents (lines) per evaluation: enough for a stable loss, quick.
EVAL_WINDOWS = 256
EVAL_BATCH = 64
#: model options the command line may give a sequence task (the recipe fills the rest).
MODEL_OPTIONS = ("context", "d_model", "n_heads", "n_layers", "dtype", "data", "symbols", "length")
#: the graph engine's cost per multiply-add of a step (forward and backward of one parent of a
#: fused dot node), for the warning only: measured 0.6 us (the micro preset on names: ~15 ms
#: for ~26,000) to 1.1 us (reverse, batch 32: 9.5 s for 8.4 million) on these machines.
GRAPH_SECONDS_PER_MADD = 1e-6
#: refuse graph-engine steps with more multiply-adds than this (each holds a parent and a
#: partial, ~16 bytes, besides the nodes: about 0.5-1 GB at the limit).
MAX_GRAPH_MADDS = 30_000_000
#: warn before a graph-engine run expected to take longer than this.
GRAPH_WARN_SECONDS = 30.0


@dataclass(frozen=True)
class SequenceRecipe:
    """Defaults that train the task well from the default seed."""

    gpt: GPTConfig
    train: TrainConfig
    symbols: int = 10  # copy / reverse: how many distinct symbols
    length: int = 5  # copy / reverse: how many tokens to copy or reverse
    context_from_data: bool = True  # lines: T = the longest document; False keeps gpt.context (longer ones are cut)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class LMObjective:
    """Next-token cross-entropy of a GPT on batches from a sequence data set (see models.training.trainer.Objective)."""

    model: GPT
    data: Any  # DigitSequences | CharText | LineDocuments
    engine: str
    batch_size: int
    _eval: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    _unigram: float | None = None  # the held-out floor of chars / lines: the same at every evaluation

    def batches(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The trainer's batch source: (idx, targets), each (B, T)."""
        if isinstance(self.data, DigitSequences):
            return self.data.batch(rng, self.batch_size)
        idx, targets = self.data.batch(rng, self.batch_size, self.model.config.context)
        if self.engine == "graph" and isinstance(self.data, LineDocuments):
            # Positions past the longest document take no loss and, the attention being causal,
            # change no earlier one: the same loss and gradients without them. numpy hardly
            # notices them; the graph engine would build every one of their nodes.
            used = int(np.flatnonzero((targets != IGNORE).any(axis=0)).max()) + 1
            idx, targets = idx[:, :used], targets[:, :used]
        return idx, targets

    def loss_and_grad(self, batch: tuple[np.ndarray, np.ndarray]) -> float:
        idx, targets = batch
        if self.engine == "graph":
            return self.model.loss_and_grad_graph(idx, targets)
        return self.model.loss_and_grad(idx, targets)

    def held_out(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The held-out batches, the same at every evaluation."""
        if not self._eval:
            if isinstance(self.data, DigitSequences):
                idx, targets = self.data.encode_pairs(self.data.test_x)
                self._eval = [
                    (idx[i : i + EVAL_BATCH * 4], targets[i : i + EVAL_BATCH * 4])
                    for i in range(0, len(idx), EVAL_BATCH * 4)
                ]
            else:
                self._eval = self.data.val_batches(self.model.config.context, EVAL_WINDOWS, EVAL_BATCH)
        return self._eval

    def evaluate(self) -> dict[str, float]:
        """val_loss (nats per token over the held-out positions with a target) and the task's own measure."""
        total, count, exact, n_seq = 0.0, 0, 0, 0
        for idx, targets in self.held_out():
            logits = self.model.logits(idx).astype(np.float64)  # (B, T, V)
            keep = targets != IGNORE
            loss, _ = sequence_cross_entropy_forward(logits, targets=targets, ignore_index=IGNORE)  # mean over kept
            total += float(loss) * int(keep.sum())  # summed over batches, then one mean over all positions
            count += int(keep.sum())
            right = (logits.argmax(axis=-1) == targets) | ~keep  # (B, T)
            exact += int(right.all(axis=1).sum())
            n_seq += idx.shape[0]
        metrics = {"val_loss": total / count if count else math.nan}
        if isinstance(self.data, DigitSequences):
            metrics["test_exact_accuracy"] = exact / n_seq
        if isinstance(self.data, (CharText, LineDocuments)):
            metrics["unigram_val_loss"] = self.unigram_val_loss()
        return metrics

    def unigram_val_loss(self) -> float:
        """The data set's add-one unigram floor on the held-out tokens, computed once (it depends on
        the data and the context only, not on the weights)."""
        if self._unigram is None:
            self._unigram = (
                self.data.unigram_val_loss()
                if isinstance(self.data, CharText)
                else self.data.unigram_val_loss(self.model.config.context, EVAL_WINDOWS)
            )
        return self._unigram


@dataclass(frozen=True)
class SequenceTask:
    """A GPT on one of the sequence data sets."""

    name: str  # copy | reverse | chars | lines
    recipe: SequenceRecipe
    description: str
    kind: str = "gpt"

    # ------------------------------------------------------------------ configs
    def _data_config(self, options: dict[str, Any]) -> dict[str, Any]:
        if self.name in ("copy", "reverse"):
            if "data" in options:
                raise InputError(f"{self.name}: generates its sequences; --data is for chars and lines")
            return {
                "kind": self.name,
                "symbols": int(options.get("symbols", self.recipe.symbols)),
                "length": int(options.get("length", self.recipe.length)),
            }
        for key in ("symbols", "length"):
            if key in options:
                raise InputError(f"{self.name}: --{key} is for copy and reverse")
        path = options.get("data")
        if path is None:
            if self.name == "lines":
                raise InputError(
                    "lines needs --data FILE: a UTF-8 text with one document per line (a list of names, say)"
                )
            return {"kind": self.name, "source": "pydoc_data.topics", "sha256": _sha256(bundled_text())}
        resolved = Path(path).expanduser().resolve()
        return {"kind": self.name, "source": str(resolved), "sha256": _sha256(read_text(resolved))}

    def load_data(self, data_config: dict[str, Any], seed: int) -> Any:
        """The data set a config names; InputError when a file changed since the run began."""
        kind = data_config.get("kind")
        if kind in ("copy", "reverse"):
            return DigitSequences(kind, n_symbols=data_config["symbols"], length=data_config["length"], seed=seed)
        source = data_config.get("source")
        if not isinstance(source, str):  # a damaged or hand-edited checkpoint.json (it was a TypeError)
            raise InputError(f"{self.name}: the run records no text file it was trained on (source {source!r})")
        text = bundled_text() if source == "pydoc_data.topics" else read_text(source)
        if _sha256(text) != data_config.get("sha256"):
            raise InputError(
                f"{self.name}: the text {source} is not the one this run was trained on (its sha256 differs)"
            )
        name = "pydoc" if source == "pydoc_data.topics" else Path(source).name
        return CharText(text, name=name) if kind == "chars" else LineDocuments(text, name=name, seed=seed)

    def model_config(self, options: dict[str, Any], seed: int) -> dict[str, Any]:
        """{"gpt": ..., "data": ...} from the command line's model options, the recipe filling the rest."""
        unknown = sorted(set(options) - set(MODEL_OPTIONS))
        if unknown:
            raise InputError(
                f"{self.name}: unknown model options {', '.join(unknown)} (a GPT task takes {', '.join(MODEL_OPTIONS)})"
            )
        data_config = self._data_config(options)
        data = self.load_data(data_config, seed)
        gpt = {**self.recipe.gpt.to_dict(), "vocab_size": data.vocab.size, "seed": seed}
        if isinstance(data, DigitSequences):
            gpt["context"] = data.context
        elif isinstance(data, LineDocuments) and self.recipe.context_from_data:
            gpt["context"] = data.context
        for key in ("context", "d_model", "n_heads", "n_layers", "dtype"):
            if key in options:
                gpt[key] = options[key]
        if isinstance(data, DigitSequences) and gpt["context"] < data.context:
            raise InputError(
                f"{self.name}: a context of {gpt['context']} cannot hold question and answer ({data.context} tokens)"
            )
        return {"gpt": GPTConfig(**gpt).validate().to_dict(), "data": data_config}

    def options_of(self, model_config: dict[str, Any]) -> dict[str, Any]:
        gpt, data = model_config.get("gpt", {}), model_config.get("data", {})
        out = {k: gpt.get(k) for k in ("context", "d_model", "n_heads", "n_layers", "dtype")}
        if "symbols" in data:
            out.update(symbols=data["symbols"], length=data["length"])
        else:
            out["data"] = data.get("source")
        return out

    def with_preset(self, preset: str) -> SequenceTask:
        """This task with a preset's recipe in place of its own (see PRESETS); InputError if it has none."""
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        if self.name not in PRESET_TASKS:
            raise InputError(f"{self.name}: --preset is for the {', '.join(PRESET_TASKS)} task")
        return replace(self, recipe=PRESETS[preset])

    def table_row(self) -> dict[str, Any]:
        g = self.recipe.gpt
        context = (
            2 * self.recipe.length
            if self.name in ("copy", "reverse")
            else "the longest line"
            if self.name == "lines"
            else g.context
        )
        return {
            "task": self.name,
            "model": self.kind,
            "description": self.description,
            "network": f"GPT {g.n_layers}x{g.d_model}, {g.n_heads} heads, context {context}",
            "recipe": {**g.to_dict(), **self.recipe.train.to_dict()},
        }

    def check_size(self, model_config: dict[str, Any], train: TrainConfig, engine: str) -> list[str]:
        config = GPTConfig(**model_config["gpt"]).validate()
        n_params = count_parameters(config)
        if n_params > MAX_PARAMETERS:
            raise InputError(
                f"the GPT would have {n_params:,} parameters, more than the {MAX_PARAMETERS:,} this trainer takes"
            )
        B = train.batch_size or 32
        T = config.context
        # Rows of every kept activation, and the attention's (B, H, T, T) scores and weights (with
        # their gradients: ~3 such arrays a block), which grow with T^2; at the larger of the
        # training batch and the evaluation batch (held-out windows are scored EVAL_BATCH at a time).
        rows = max(B, EVAL_BATCH)
        acts = (
            rows * T * ((config.d_model * 12 + config.ffn_width * 2) * config.n_layers + config.vocab_size)
            + 3 * rows * config.n_heads * T * T * config.n_layers
        )
        if acts > MAX_ACTIVATIONS:
            raise InputError(
                f"a step would hold ~{acts:,} activations, more than the {MAX_ACTIVATIONS:,} this trainer takes "
                f"(context {T}{', the longest line' if self.recipe.context_from_data and self.name == 'lines' else ''}); "
                "use a smaller --batch-size, --context or --d-model"
            )
        if engine != "graph":
            return []
        T, C = config.context, config.d_model
        # Every weight matrix is read once per position (the tables are looked up, not multiplied),
        # and causal attention reads ~T/2 keys and values of width C per position and block.
        tables = config.vocab_size * C + (T * C if config.positions == "learned" else 0)
        madds = B * T * ((n_params - tables) + config.n_layers * T * C)
        if madds > MAX_GRAPH_MADDS:
            raise InputError(
                f"a graph-engine step would do ~{madds:,} scalar multiply-adds, more than the {MAX_GRAPH_MADDS:,} "
                "it takes; use --engine manual, or a smaller model and --batch-size"
            )
        seconds = madds * GRAPH_SECONDS_PER_MADD  # at full context: shorter documents cost less
        if seconds * train.steps <= GRAPH_WARN_SECONDS:
            return []
        return [
            f"warning: a graph-engine step does up to ~{madds:,} scalar multiply-adds (roughly {seconds:.2g} s a step at "
            f"full context, ~{seconds * train.steps:.0f} s for {train.steps} steps); --engine manual is the fast path"
        ]

    def build(
        self, model_config: dict[str, Any], train: TrainConfig, engine: str, kernels: Kernels | None = None
    ) -> Setup:
        """The model, objective and batches; `kernels` replaces pieces of the GPT's composed path (models/zoo/kernels.py),
        which then trains in place of the fused step."""
        config = GPTConfig(**model_config["gpt"]).validate()
        data = self.load_data(model_config["data"], config.seed)
        model = GPT(config, kernels=kernels)
        B = train.batch_size or 32
        objective = LMObjective(model, data, engine, B)
        summary = [
            data.summary(),
            f"GPT: {config.n_layers} block{'s' if config.n_layers != 1 else ''} of width {config.d_model}, {config.n_heads} heads, context "
            f"{config.context}, vocabulary {config.vocab_size}, {model.num_parameters():,} parameters, {config.dtype}; "
            f"{train.optimizer} lr {train.lr:g}, batch {B}, {engine} engine{COMPOSED_NOTE if kernels is not None else ''}, "
            f"seed {config.seed}",
        ]

        def draw(folder: Path, state: TrainState) -> dict[str, str]:
            return _draw_lm(folder, state, model, data, self.name)

        return Setup(model, objective, objective.batches, summary, draw)


def _draw_lm(folder: Path, state: TrainState, model: GPT, data: Any, name: str) -> dict[str, str]:
    """Training and validation loss curves, and the attention of every block on one held-out example."""
    from models.zoo.gpt import save_attention_maps
    from viz.plots import plot_loss

    steps = [e["step"] for e in state.evals]
    validation = {"validation loss": (steps, [e["val_loss"] for e in state.evals])} if steps else None
    metrics = None
    if steps and "test_exact_accuracy" in state.evals[-1]:
        metrics = {"held-out exact-sequence accuracy": (steps, [e["test_exact_accuracy"] for e in state.evals])}
    files = {
        "loss_curve": str(
            plot_loss(
                state.losses,
                Path(folder) / "loss.png",
                validation=validation,
                metrics=metrics,
                title=f"{name}: training and validation loss (nats per token)",
            )
        )
    }
    if isinstance(data, DigitSequences):
        idx, _ = data.encode_pairs(data.test_x[:1])
    else:
        idx = LMObjective(model, data, "manual", 1).held_out()[0][0][:1, : min(model.config.context, 24)]
    tokens = [repr(data.vocab.tokens[i])[1:-1] or " " for i in idx[0]]
    for i, path in enumerate(save_attention_maps(model, idx, tokens, folder)):
        files[f"attention_block_{i + 1}"] = str(path)
    return files


def _adamw(steps: int, warmup: int, eval_every: int) -> TrainConfig:
    """The GPT tasks' recipe: AdamW (lr 3e-3, weight decay 0.01), linear warm-up, cosine decay to
    lr / 10, gradient norm clipped at 1 (as nanoGPT), batch 32."""
    return TrainConfig(
        steps=steps,
        batch_size=32,
        optimizer="adamw",
        lr=3e-3,
        warmup_steps=warmup,
        decay="cosine",
        min_lr=3e-4,
        weight_decay=0.01,
        grad_clip=1.0,
        eval_every=eval_every,
    )


_SMALL_GPT = GPTConfig(d_model=32, n_heads=2, n_layers=2, activation="gelu_tanh")

LM_TASKS: dict[str, SequenceTask] = {
    "copy": SequenceTask(
        "copy",
        SequenceRecipe(_SMALL_GPT, _adamw(500, 100, 100)),
        "5 tokens of 10 symbols, then '>' and the same tokens; 500 held out",
    ),
    "reverse": SequenceTask(
        "reverse",
        SequenceRecipe(_SMALL_GPT, _adamw(600, 100, 100)),
        "5 tokens of 10 symbols, then '>' and them reversed; 500 held out",
    ),
    "chars": SequenceTask(
        "chars",
        SequenceRecipe(
            GPTConfig(context=32, d_model=64, n_heads=4, n_layers=2, activation="gelu_tanh", dtype="float32"),
            _adamw(3000, 200, 500),
        ),
        "next character of Python's bundled docs (or --data FILE), 90/10 split",
    ),
    "lines": SequenceTask(
        "lines",
        SequenceRecipe(GPTConfig(d_model=32, n_heads=4, n_layers=2, activation="gelu_tanh"), _adamw(2000, 100, 500)),
        "every line of --data FILE a document (a list of names, say), 90/10 split",
    ),
}

#: `twograd train lines --preset micro`: the one-file scalar GPT's configuration, for the graph engine.
#: One block of width 16 with 4 heads reading 16 positions, RMSNorm, ReLU, no biases, learned
#: positions, an untied head; Adam (lr 0.01, betas 0.85/0.99) decaying linearly to 0; one
#: document a step. Its norms are the one-file GPT's: RMSNorm without gains, one more right
#: after the embedding, none before the head (on real first names these three take the mean
#: loss of the last 100 of 1,000 steps from 2.44 to 2.36 from seed 0; benchmarks/README.md).
PRESETS: dict[str, SequenceRecipe] = {
    "micro": SequenceRecipe(
        GPTConfig(
            context=16,
            d_model=16,
            n_heads=4,
            n_layers=1,
            norm="rms",
            activation="relu",
            bias=False,
            positions="learned",
            tied=False,
            norm_gain=False,
            embed_norm=True,
            final_norm=False,
        ),
        TrainConfig(
            steps=1000, batch_size=1, optimizer="adam", lr=0.01, betas=(0.85, 0.99), decay="linear", min_lr=0.0
        ),
        context_from_data=False,
    ),
}
#: the tasks a preset applies to.
PRESET_TASKS = ("lines",)
