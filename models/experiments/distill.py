"""Knowledge distillation: a small student learns from the labels and from a larger teacher's
softened outputs (nn.distill's loss), against the same student on the labels alone.

Two settings (`SETTINGS`), each run over seeds with the same seeds and steps for both students:

* spirals (an MLP): the teacher is a wide MLP trained by `models.training.tasks.train` on every training
  label; the student is a narrow MLP that sees the labels of only `n_labelled` training points
  (a few per arm), as when labels are dear but a trained model is at hand. The distilled student
  also reads the teacher's logits on every training input, the transfer set (Hinton et al. train
  the student on a transfer set; its labels are not needed for the soft term):

      loss = alpha * T^2 * mean_{all N inputs} KL(q_t || q_s) + (1 - alpha) * mean_{L labelled} CE(y, p)

  The soft term is `distillation_forward` with alpha = 1 over the transfer set, the hard term
  `cross_entropy_forward` over the labelled rows. With alpha = 0 the loss and its gradient are
  exactly those of the labels-only student (0 * finite = 0), so the two runs are bit for bit one.
  The held-out metric is test accuracy (higher is better).
* chars (a tiny transformer): the teacher is the `chars` task's GPT (a run folder given with
  --teacher, or trained first), the student a GPT with fewer and narrower blocks. Every position
  has a label, so the loss is `distillation_forward` itself on the (B, T, V) logits (the teacher's
  computed on the same batch: static); its gradient enters the GPT at the logits
  (`gpt_backward_logits`). The held-out metric is validation loss in nats per token (lower
  is better).

Agreement is the fraction of held-out examples (spirals) or positions (chars) where a model's
argmax is the teacher's.
"""

# Shape legend: N training inputs (the transfer set), L labelled ones, K classes; for the GPT
# B batch, T positions, V vocabulary.

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InputError
from engine.gradcheck import text_table
from models.data.datasets import Dataset, load_dataset
from models.reports import Shown
from models.training.lm import LMObjective
from models.training.trainer import Interrupted, TrainConfig, Trainer, full_batch, run_to_end
from models.zoo.gpt import GPT, gpt_backward_logits, gpt_forward
from models.zoo.mlp import MLP, MLPConfig
from nn.distill import distillation_backward, distillation_forward
from nn.losses import cross_entropy_backward, cross_entropy_forward

#: the softening temperature's range: the loss is T^2 KL, so T = 1e308 overflows it, and above
#: 100 every softened distribution is uniform to three digits; below 1e-6 z / T overflows.
MIN_TEMPERATURE = 1e-6
MAX_TEMPERATURE = 100.0
#: the teacher's softened distribution is drawn at these temperatures ("dark knowledge").
PICTURE_TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
#: at most this many classes (tokens) in the softened-distribution picture: the teacher's likeliest.
PICTURE_CLASSES = 12


@dataclass(frozen=True)
class TabularRecipe:
    """The spirals setting's defaults (see the module docstring)."""

    task: str = "spirals"
    teacher_hidden: tuple[int, ...] = (128, 128)
    teacher_steps: int = 2000
    student_hidden: tuple[int, ...] = (16, 16)
    n_labelled: int = 15  # training labels the students see (stratified: 5 per arm of the spirals)
    steps: int = 1500
    lr: float = 0.01
    temperature: float = 4.0
    alpha: float = 0.9
    eval_every: int = 100


@dataclass(frozen=True)
class LMRecipe:
    """The chars setting's defaults: small enough that `twograd distill chars` takes a few minutes."""

    task: str = "chars"
    teacher: dict[str, Any] = field(default_factory=lambda: {"context": 32, "d_model": 64, "n_heads": 4, "n_layers": 2})
    teacher_steps: int = 1500
    student: dict[str, Any] = field(default_factory=lambda: {"d_model": 32, "n_heads": 2, "n_layers": 1})
    steps: int = 800
    temperature: float = 2.0
    alpha: float = 0.5
    eval_every: int = 100


SETTINGS: dict[str, Any] = {"spirals": TabularRecipe(), "chars": LMRecipe()}


# ---------------------------------------------------------------------------- objectives
def labelled_subset(y: np.ndarray, n_labelled: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of `n_labelled` rows, spread over the classes as evenly as they go (stratified)."""
    classes = np.unique(y)
    if n_labelled < len(classes) or n_labelled > len(y):
        raise InputError(
            f"distill: --labelled must be between {len(classes)} (one per class) and {len(y)}, got {n_labelled}"
        )
    picked = []
    for i, c in enumerate(classes):
        rows = np.flatnonzero(y == c)
        take = n_labelled // len(classes) + (1 if i < n_labelled % len(classes) else 0)
        picked.append(rng.choice(rows, size=min(take, len(rows)), replace=False))
    return np.sort(np.concatenate(picked))


class TabularDistillObjective:
    """An MLP student on a few labels, with or without a teacher (see the module docstring).

    The forward runs over every training input either way, so that with alpha = 0 the distilled
    student computes exactly what the labels-only student does.
    """

    def __init__(
        self,
        model: MLP,
        data: Dataset,
        labelled: np.ndarray,
        teacher_logits: np.ndarray | None = None,
        temperature: float = 1.0,
        alpha: float = 0.0,
        teacher_test: np.ndarray | None = None,
    ) -> None:
        self.model, self.data, self.labelled = model, data, labelled
        self.teacher_logits = teacher_logits  # (N, K), static
        self.temperature, self.alpha = temperature, alpha
        self.teacher_test = teacher_test  # (N_test,) the teacher's predicted classes, for agreement
        # the soft term needs a valid label per row; with alpha = 1 it is never used
        self._placeholder = None if teacher_logits is None else np.argmax(teacher_logits, axis=1)

    def loss_and_grad(self, batch: Any) -> float:
        z = self.model.forward(self.data.X_train)  # (N, K)
        ce, ce_cache = cross_entropy_forward(z[self.labelled], targets=self.data.y_train[self.labelled])
        (dce,) = cross_entropy_backward(1.0 - self.alpha, ce_cache)  # (L, K)
        dz = np.zeros_like(z)
        dz[self.labelled] = dce
        loss = (1.0 - self.alpha) * float(ce)
        if self.teacher_logits is not None:
            soft, soft_cache = distillation_forward(
                z,
                teacher_logits=self.teacher_logits,
                targets=self._placeholder,
                temperature=self.temperature,
                alpha=1.0,
            )  # T^2 KL, mean over N
            (dsoft,) = distillation_backward(self.alpha, soft_cache)
            dz += dsoft
            loss += self.alpha * float(soft)
        self.model.backward(dz)
        return loss

    def evaluate(self) -> dict[str, float]:
        d = self.data
        metrics = {"test_accuracy": self.model.accuracy(d.X_test, d.y_test)}
        if self.teacher_test is not None:
            metrics["agreement"] = float(np.mean(self.model.predict(d.X_test) == self.teacher_test))
        return metrics


class LMDistillObjective:
    """A GPT student on next-token batches, learning from a teacher GPT's logits on the same batch.

    Batches, held-out windows and `val_loss` are the labels-only objective's (`models.training.lm.LMObjective`),
    so both students draw the same batches from the same seed.
    """

    def __init__(self, lm: LMObjective, teacher: GPT | None, temperature: float, alpha: float) -> None:
        self.lm, self.model, self.teacher = lm, lm.model, teacher
        self.temperature, self.alpha = temperature, alpha
        self.batches = lm.batches

    def loss_and_grad(self, batch: tuple[np.ndarray, np.ndarray]) -> float:
        idx, targets = batch
        if self.teacher is None:
            return self.lm.loss_and_grad(batch)
        teacher_logits = self.teacher.logits(idx)  # (B, T, V), static: the teacher is not trained
        _, cache = gpt_forward(*self.model.param_list(), idx=idx, targets=targets, **self.model.config.static())
        loss, dcache = distillation_forward(
            cache.logits, teacher_logits=teacher_logits, targets=targets, temperature=self.temperature, alpha=self.alpha
        )
        (dlogits,) = distillation_backward(1.0, dcache)
        for acc, g in zip(self.model.grad_list(), gpt_backward_logits(dlogits, cache)):
            acc += g
        return float(loss)

    def evaluate(self) -> dict[str, float]:
        metrics = {"val_loss": self.lm.evaluate()["val_loss"]}
        if self.teacher is not None:
            metrics["agreement"] = lm_agreement(self.model, self.teacher, self.lm)
        return metrics


def lm_agreement(model: GPT, teacher: GPT, lm: LMObjective) -> float:
    """Fraction of held-out positions (with a target) where the model's argmax token is the teacher's."""
    same, count = 0, 0
    for idx, targets in lm.held_out():
        keep = targets >= 0
        same += int(((model.logits(idx).argmax(-1) == teacher.logits(idx).argmax(-1)) & keep).sum())
        count += int(keep.sum())
    return same / count


# ---------------------------------------------------------------------------- one seed
@dataclass
class SeedResult:
    """The three models of one seed: held-out metric, agreement with the teacher, learning curves."""

    teacher_metric: float
    student_metric: float
    distilled_metric: float
    student_agreement: float
    distilled_agreement: float
    curves: dict[str, tuple[list[int], list[float]]]  # "labels only" / "distilled" -> (steps, metric)


def _curve(evals: list[dict[str, float]], name: str) -> tuple[list[int], list[float]]:
    return [int(e["step"]) for e in evals], [float(e[name]) for e in evals]


def _finished_teacher(report: Any) -> Any:
    """The trained teacher; `Interrupted` when Ctrl-C stopped its training (`models.training.tasks.train` has
    then kept the run in a folder, which can be resumed and given back as --teacher)."""
    if report.status != "finished":
        raise Interrupted(
            f"the teacher's training, {'; '.join(report.notes)}; the experiment stopped there "
            "(finish the teacher, then pass it as --teacher)"
        )
    return report.model


def _train(
    objective: Any, batches: Callable[[np.random.Generator], Any], config: TrainConfig, progress: bool, desc: str
) -> list[dict[str, float]]:
    trainer = Trainer(objective, batches, config, progress=progress, desc=desc)
    trainer.evaluate()  # the curve starts at step 0
    return run_to_end(trainer).state.evals


def run_tabular_seed(
    recipe: TabularRecipe,
    seed: int,
    temperature: float,
    alpha: float,
    steps: int,
    teacher: MLP | None = None,
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
) -> tuple[SeedResult, dict[str, Any]]:
    """Teacher (trained here unless given), then the labels-only and the distilled student from one seed."""
    from models.training.tasks import train

    data = load_dataset(recipe.task, seed=seed)
    if teacher is None:
        report = train(
            recipe.task,
            model_options={"hidden": recipe.teacher_hidden},
            train_options={"steps": recipe.teacher_steps, "seed": seed},
            progress=progress,
        )
        teacher = _finished_teacher(report)
    labelled = labelled_subset(data.y_train, recipe.n_labelled, np.random.default_rng(seed))
    teacher_logits = teacher.forward(data.X_train)  # (N, K)
    teacher_test = teacher.predict(data.X_test)
    config = TrainConfig(steps=steps, lr=recipe.lr, eval_every=recipe.eval_every, seed=seed)
    student_config = MLPConfig(
        sizes=[data.n_features, *recipe.student_hidden, data.n_classes],
        activation="tanh",
        loss="cross_entropy",
        seed=seed,
    )
    runs = {}
    for name, logits in (("labels only", None), ("distilled", teacher_logits)):
        objective = TabularDistillObjective(
            MLP(student_config), data, labelled, logits, temperature, alpha if logits is not None else 0.0, teacher_test
        )
        runs[name] = (_train(objective, full_batch, config, progress, f"{name} seed {seed}"), objective.model)
    (s_evals, student), (d_evals, distilled) = runs["labels only"], runs["distilled"]
    result = SeedResult(
        teacher.accuracy(data.X_test, data.y_test),
        s_evals[-1]["test_accuracy"],
        d_evals[-1]["test_accuracy"],
        s_evals[-1]["agreement"],
        d_evals[-1]["agreement"],
        {"labels only": _curve(s_evals, "test_accuracy"), "distilled": _curve(d_evals, "test_accuracy")},
    )
    info = {
        "teacher": teacher,
        "student": student,
        "distilled": distilled,
        "data": data,
        "labelled": labelled,
        "example_logits": teacher.forward(data.X_test[:1])[0],
        "class_names": list(data.class_names),
    }
    return result, info


def load_teacher(folder: str | Path, task: str) -> Any:
    """The model saved in a run folder of `task` (`twograd train TASK --out DIR`); InputError for another task."""
    from models.training.runs import load_run
    from models.training.sampling import load_gpt_run
    from nn.checkpoint import CheckpointError

    saved = load_run(folder, "--teacher")
    if saved.task != task:
        raise InputError(f"--teacher {saved.folder}: a run of {saved.task!r}, this setting distils {task!r}")
    if saved.model_kind == "gpt":
        return load_gpt_run(folder)[1]
    model = MLP(MLPConfig(**saved.model_config))
    try:
        model.load_state_dict(saved.params)
    except ValueError as err:
        raise CheckpointError(f"--teacher {saved.folder}: cannot load the weights: {err}") from None
    return model


def run_lm_seed(
    recipe: LMRecipe,
    seed: int,
    temperature: float,
    alpha: float,
    steps: int,
    teacher: GPT | None = None,
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
) -> tuple[SeedResult, dict[str, Any]]:
    """Teacher GPT (trained here unless given), then the labels-only and the distilled student GPT from one seed."""
    from models.training.tasks import get_task, train

    task = get_task(recipe.task)
    if teacher is None:
        report = train(
            recipe.task,
            model_options=recipe.teacher,
            train_options={"steps": recipe.teacher_steps, "seed": seed, "eval_every": 0},
            progress=progress,
        )
        teacher = _finished_teacher(report)
    student_options = {**recipe.student, "context": teacher.config.context, "dtype": teacher.config.dtype}
    config = TrainConfig(
        **{
            **task.recipe.train.to_dict(),
            "steps": steps,
            "seed": seed,
            "eval_every": recipe.eval_every,
            "warmup_steps": min(task.recipe.train.warmup_steps, steps // 10),
        }
    )
    runs = {}
    for name, t in (("labels only", None), ("distilled", teacher)):
        setup = task.build(task.model_config(student_options, seed), config, "manual")
        objective = LMDistillObjective(setup.objective, t, temperature, alpha)
        evals = _train(objective, objective.batches, config, progress, f"{name} seed {seed}")
        runs[name] = (evals, objective.model, setup.objective)
    (s_evals, student, lm), (d_evals, distilled, _) = runs["labels only"], runs["distilled"]
    teacher_val = LMDistillObjective(LMObjective(teacher, lm.data, "manual", lm.batch_size), None, 1.0, 0.0).evaluate()[
        "val_loss"
    ]
    idx = lm.held_out()[0][0][:1]  # one held-out window
    result = SeedResult(
        teacher_val,
        s_evals[-1]["val_loss"],
        d_evals[-1]["val_loss"],
        lm_agreement(student, teacher, lm),
        d_evals[-1]["agreement"],
        {"labels only": _curve(s_evals, "val_loss"), "distilled": _curve(d_evals, "val_loss")},
    )
    tokens = [repr(t)[1:-1] or " " for t in lm.data.vocab.tokens]
    info = {
        "teacher": teacher,
        "student": student,
        "distilled": distilled,
        "example_logits": teacher.logits(idx)[0, -1].astype(np.float64),
        "class_names": tokens,
        "example": lm.data.vocab.decode(idx[0, -16:].tolist()),
    }
    return result, info


# ---------------------------------------------------------------------------- many seeds
@dataclass(repr=False)
class DistillReport(Shown):
    """What `distill` did: the teacher, the labels-only student and the distilled student over the
    seeds; `metrics` (their means), `text()` (what `twograd distill` prints), `to_json()` (its --json)."""

    setting: str
    metric: str  # "test_accuracy" (higher is better) or "val_loss" (nats per token, lower is better)
    temperature: float
    alpha: float
    steps: int
    seeds: list[int]
    parameters: dict[str, int]  # teacher / student (both students have the same size)
    results: list[SeedResult]
    teacher_given: bool
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)

    def stat(self, name: str) -> dict[str, float]:
        """{"mean", "std"} over the seeds (std with ddof 0: 0 for one seed)."""
        values = np.array([getattr(r, name) for r in self.results], dtype=np.float64)
        return {"mean": float(values.mean()), "std": float(values.std())}

    @property
    def higher_is_better(self) -> bool:
        return self.metric.endswith("accuracy")

    def verdict(self) -> str:
        """Does the distilled student beat the labels-only one by more than the seed-to-seed std?"""
        s, d = self.stat("student_metric"), self.stat("distilled_metric")
        gain = (d["mean"] - s["mean"]) * (1 if self.higher_is_better else -1)
        spread = max(s["std"], d["std"])
        if len(self.results) < 2:
            change = d["mean"] - s["mean"]
            better = "better" if gain > 0 else "worse" if gain < 0 else "no different"
            return (
                f"distillation changes the held-out {self.metric} by {change:+.4g} ({better}; "
                "one seed: no spread to compare with)"
            )
        word = "beats" if gain > spread else "does not beat"
        return (
            f"the distilled student {word} the labels-only student by more than the seed-to-seed std: "
            f"gain {gain:+.4g}, std {spread:.4g} over {len(self.results)} seeds"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "setting": self.setting,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "temperature": self.temperature,
            "alpha": self.alpha,
            "steps": self.steps,
            "seeds": self.seeds,
            "teacher_given": self.teacher_given,
            "teacher_metric": {"mean": self.stat("teacher_metric")["mean"], "std": self.stat("teacher_metric")["std"]},
            "student_metric": self.stat("student_metric"),
            "distilled_metric": self.stat("distilled_metric"),
            "agreement": {
                "teacher": 1.0,
                "student": self.stat("student_agreement"),
                "distilled": self.stat("distilled_agreement"),
            },
            "parameters": self.parameters,
            "verdict": self.verdict(),
            "per_seed": [
                {
                    "seed": s,
                    "teacher_metric": r.teacher_metric,
                    "student_metric": r.student_metric,
                    "distilled_metric": r.distilled_metric,
                    "student_agreement": r.student_agreement,
                    "distilled_agreement": r.distilled_agreement,
                }
                for s, r in zip(self.seeds, self.results)
            ],
            "seconds": round(self.seconds, 3),
            "files": self.files,
        }

    @property
    def metrics(self) -> dict[str, float]:
        """The held-out metric's mean over the seeds, for each of the three models."""
        return {
            f"{who}_{self.metric}": self.stat(f"{who}_metric")["mean"] for who in ("teacher", "student", "distilled")
        }

    def text(self) -> str:
        return format_distill_report(self)

    def html_title(self) -> str:
        return (
            f"twograd distill {self.setting}: T {self.temperature:g}, alpha {self.alpha:g}, {len(self.seeds)} seed(s)"
        )

    def summary_rows(self) -> list[list[str]]:
        """One row per model: name, parameters, held-out metric (mean ± std), agreement with the teacher."""
        pct = self.higher_is_better
        return [
            ["teacher", f"{self.parameters['teacher']:,}", _pm(self.stat("teacher_metric"), pct), "100.0%"],
            [
                "student on labels",
                f"{self.parameters['student']:,}",
                _pm(self.stat("student_metric"), pct),
                _pm(self.stat("student_agreement"), True),
            ],
            [
                "distilled student",
                f"{self.parameters['student']:,}",
                _pm(self.stat("distilled_metric"), pct),
                _pm(self.stat("distilled_agreement"), True),
            ],
        ]

    def html_rows(self) -> tuple[list[str], list[list[Any]]]:
        return ["model", "parameters", f"held-out {self.metric}", "agreement with teacher"], list(self.summary_rows())

    def plot_curves(self) -> tuple[dict[str, list[float]], bool]:
        first = self.results[0].curves if self.results else {}
        return {name: values for name, (_, values) in first.items()}, False


def _pm(stat: dict[str, float], percent: bool) -> str:
    if percent:
        return f"{100 * stat['mean']:.1f}% ± {100 * stat['std']:.1f}"
    return f"{stat['mean']:.4f} ± {stat['std']:.4f}"


def format_distill_report(report: DistillReport) -> str:
    """The summary table (teacher / student on labels / distilled student) and the verdict."""
    metric = "test accuracy" if report.higher_is_better else "val loss (nats)"
    rows = report.summary_rows()
    head = (
        f"{report.setting}: T {report.temperature:g}, alpha {report.alpha:g}, {report.steps} student steps, "
        f"seeds {', '.join(map(str, report.seeds))}"
    )
    lines = [
        head,
        text_table(["model", "parameters", f"held-out {metric}", "agreement with teacher"], rows),
        report.verdict(),
    ]
    lines += [f"wrote {path}" for path in report.files.values()]
    return "\n".join(lines)


SUMMARY = "summary.json"


def distill(
    setting: str,
    *,
    teacher: str | Path | None = None,
    temperature: float | None = None,
    alpha: float | None = None,
    seed: int = 0,
    seeds: int = 1,
    steps: int | None = None,
    out: str | Path | None = None,
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
    recipe: TabularRecipe | LMRecipe | None = None,
    overwrite: bool = False,
) -> DistillReport:
    """Run `setting` over seeds seed .. seed + seeds - 1; with `out`, write summary.json and the pictures there
    (a folder the one --out rule accepts: see models.training.runs.prepare_out; `overwrite` replaces
    what twograd wrote there before).

    `recipe` replaces the setting's defaults (the tour runs a shorter one)."""
    import json
    import time

    from engine.atomic import atomic_write
    from models.training.runs import finite_or_none, prepare_out, release_folder
    from nn.distill import _check_settings

    say = echo or (lambda _msg: None)
    if setting not in SETTINGS:
        raise InputError(f"distill: unknown setting {setting!r}; choose one of: {', '.join(SETTINGS)}")
    recipe = recipe or SETTINGS[setting]
    T = recipe.temperature if temperature is None else temperature
    a = recipe.alpha if alpha is None else alpha
    try:
        T, a = _check_settings(T, a)
    except InputError as err:  # name the flag the bad value came from
        flag = "--alpha" if "alpha" in str(err) else "--temperature"
        raise InputError(f"{flag}: {err}") from None
    # T^2 KL: at 1e308 the loss overflows (and the divergence message, "try a smaller --lr", was wrong)
    if not MIN_TEMPERATURE <= T <= MAX_TEMPERATURE:
        raise InputError(f"--temperature must be in {MIN_TEMPERATURE:g} .. {MAX_TEMPERATURE:g}, got {T:g}")
    steps = recipe.steps if steps is None else steps
    if seeds < 1 or steps < 1 or seed < 0:
        raise InputError(f"distill: --seeds and --steps must be >= 1 and --seed >= 0, got {seeds}, {steps}, {seed}")
    folder = None
    if out is not None:
        folder = prepare_out(out, overwrite=overwrite, resumable=False, command="distill")
    try:
        given = load_teacher(teacher, recipe.task) if teacher is not None else None
        began = time.perf_counter()
        results: list[SeedResult] = []
        info: dict[str, Any] = {}
        for s in range(seed, seed + seeds):
            if isinstance(recipe, LMRecipe):
                result, info = run_lm_seed(recipe, s, T, a, steps, teacher=given, progress=progress)
            else:
                result, info = run_tabular_seed(recipe, s, T, a, steps, teacher=given, progress=progress)
            results.append(result)
            say(
                f"seed {s}: teacher {result.teacher_metric:.4f}, labels only {result.student_metric:.4f}, "
                f"distilled {result.distilled_metric:.4f}"
            )
        metric = "val_loss" if isinstance(recipe, LMRecipe) else "test_accuracy"
        parameters = {
            "teacher": int(info["teacher"].num_parameters()),
            "student": int(info["student"].num_parameters()),
        }
        report = DistillReport(
            setting,
            metric,
            T,
            a,
            steps,
            list(range(seed, seed + seeds)),
            parameters,
            results,
            given is not None,
            time.perf_counter() - began,
        )
        if folder is not None:
            report.files = _pictures(report, info, folder)
            report.files["summary"] = str(folder / SUMMARY)
            atomic_write(
                folder / SUMMARY,
                json.dumps(finite_or_none(report.to_json()), allow_nan=False, indent=1).encode("utf-8"),
            )
        return report
    finally:
        if folder is not None:
            release_folder(folder)


def _pictures(report: DistillReport, info: dict[str, Any], folder: Path) -> dict[str, str]:
    """Learning curves (mean and std over the seeds) and the teacher's softened distribution on one example."""
    from viz.plots import PlotsUnavailable, plot_curve_bands, plot_soft_targets

    try:
        curves = {}
        for name in ("labels only", "distilled"):
            steps = report.results[0].curves[name][0]
            values = np.array([r.curves[name][1] for r in report.results])  # (seeds, E)
            curves[f"student, {name}"] = (steps, values.mean(axis=0).tolist(), values.std(axis=0).tolist())
        what = "test accuracy" if report.higher_is_better else "validation loss (nats per token)"
        files = {
            "learning_curves": str(
                plot_curve_bands(
                    curves,
                    folder / "learning_curves.png",
                    ylabel=f"held-out {what}",
                    title=f"{report.setting}: distilled vs labels-only student "
                    f"({len(report.results)} seeds, mean ± std)",
                )
            )
        }
        z = np.asarray(info["example_logits"], dtype=np.float64)  # (K,)
        order = np.argsort(-z)[:PICTURE_CLASSES]
        probs = {}
        for T in PICTURE_TEMPERATURES:
            u = z / T
            p = np.exp(u - u.max())
            probs[T] = (p / p.sum())[order].tolist()
        names = [info["class_names"][i] for i in order]
        example = f" after {info['example']!r}" if "example" in info else ""
        files["soft_targets"] = str(
            plot_soft_targets(
                probs,
                names,
                folder / "soft_targets.png",
                title=f"{report.setting}: the teacher's softmax(z / T) on one held-out example{example}",
            )
        )
        return files
    except PlotsUnavailable:
        return {}
