"""The scalar engine trains a micro GPT, shown: the `twograd tour` stage of the graph engine.

`twograd train lines --preset micro --engine graph` for a few hundred steps on stand-in
documents (lowercase words of the bundled docs, `models.data.sequences.stand_in_words`): every
scalar of the GPT's loss is an `engine.Value`, every dot product one fused `engine.dot` node,
and the engine's backward is the whole gradient. The stage writes its training text
(out_dir/micro_gpt/stand_in_words.txt) and its run folder (out_dir/micro_gpt/run), says so, and
prints the loss falling, the time per step and a few words sampled from the trained model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.data.sequences import stand_in_words
from models.training.sampling import sample_run
from models.training.tasks import train

#: Adam steps of the stage (one document each; the linear decay reaches 0 at the last).
TOUR_STEPS = 300
#: losses averaged at each end of the run to show it falling (one document a step is noisy).
WINDOW = 50
#: the stage passes when the last WINDOW steps' mean loss is at least this many nats below the
#: first WINDOW's (a model that learns nothing stays where it starts; see the module test) ...
MIN_DROP = 0.25
#: ... and the numpy manual path, from the same seed, follows the same loss curve to this (the
#: same math, rounded differently: the issue's 1e-10, over every step of the run).
SAME_CURVE_ATOL = 1e-10
#: the one-file scalar GPT's time per step on these machines (issue 11's number, another run).
REFERENCE_MS = 320.0
#: samples printed, and their temperature (below 1: likelier letters, more word-like samples).
N_SAMPLES, TEMPERATURE = 5, 0.5


def tour_stage(out_dir: Path, echo: Callable[[str], None]) -> bool:
    """Train the micro GPT on the graph engine into out_dir/micro_gpt, then sample words from it."""
    folder = Path(out_dir) / "micro_gpt"
    folder.mkdir(parents=True, exist_ok=True)
    words = folder / "stand_in_words.txt"  # the tour's own file, rewritten each tour
    words.write_text("\n".join(stand_in_words()) + "\n", encoding="utf-8")
    echo(
        f"wrote {words} (the training text: lowercase words of the bundled docs); the run goes to {folder / 'run'} "
        "(both rewritten by each tour)"
    )
    report = train(
        "lines",
        preset="micro",
        engine="graph",
        model_options={"data": str(words)},
        train_options={"steps": TOUR_STEPS},
        out=folder / "run",
        overwrite=True,
        echo=echo,
        plots=False,
    )
    losses = report.outcome.state.losses
    first, last = float(np.mean(losses[:WINDOW])), float(np.mean(losses[-WINDOW:]))
    windows = [float(np.mean(losses[i : i + WINDOW])) for i in range(0, len(losses), WINDOW)]
    vocab = report.model.config.vocab_size
    ms = report.outcome.ms_per_step or float("nan")
    echo(
        f"{report.outcome.state.step} steps on the graph engine, {ms:.1f} ms a step "
        f"({REFERENCE_MS / ms:.1f}x faster than the one-file scalar GPT's {REFERENCE_MS:.0f} ms a step, benchmarks/scalar_gpt.py)"
    )
    echo(
        f"mean loss of each {WINDOW} steps, nats per character: {' -> '.join(f'{w:.3f}' for w in windows)} "
        f"(uniform over {vocab} characters: ln {vocab} = {math.log(vocab):.3f})"
    )
    manual = train(
        "lines",
        preset="micro",
        engine="manual",
        model_options={"data": str(words)},
        train_options={"steps": TOUR_STEPS},
        plots=False,
    )
    gap = float(np.max(np.abs(np.subtract(manual.outcome.state.losses, losses))))
    echo(
        f"the numpy manual path from the same seed: the same curve, largest loss difference {gap:.1e} over "
        f"{len(losses)} steps ({manual.outcome.ms_per_step:.1f} ms a step)"
    )
    samples = sample_run(folder / "run", n=N_SAMPLES, temperature=TEMPERATURE, seed=0).samples
    echo(f"{N_SAMPLES} samples at temperature {TEMPERATURE}: {', '.join(samples)}")
    return first - last >= MIN_DROP and gap <= SAME_CURVE_ATOL
