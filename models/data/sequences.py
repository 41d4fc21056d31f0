"""Token sequences for tiny transformers: copy and reverse (generated), chars (a text), lines (one document a line).

Every task here is seeded, has a held-out split and nothing is downloaded. A batch is a pair

    idx      (B, T) int64   token ids the model reads
    targets  (B, T) int64   the next token at each position, or IGNORE where no loss is taken

so that every task trains with the same next-token cross-entropy.

* copy / reverse: `x_1 .. x_L > y_1 .. y_L`, with y = x or x reversed and `>` a separator
  token; the loss is taken on the answer only (the targets of x_1 .. x_{L-1} are IGNORE).
  The held-out sequences are never drawn for training.
* chars: character-level next-token prediction on a text (by default Python's own bundled
  documentation, `pydoc_data.topics`), split 90/10; a batch is B random windows.
* lines: every non-empty line of a file is one document, wrapped in a boundary token (as
  makemore does with a list of names); a batch is B documents, padded with IGNORE.
"""

# Shape legend: B batch, T context length, V vocabulary size, L answer length (copy/reverse).

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.files import read_regular_file

IGNORE = -1  # a target that takes no loss (prompt positions, padding)
SEPARATOR = ">"  # between the question and the answer of copy / reverse
BOUNDARY = "\n"  # starts and ends each document of `lines` (a newline never occurs inside a line)


@dataclass(frozen=True)
class Vocabulary:
    """Token strings by id; `joiner` glues decoded tokens ("" for characters, " " for digits)."""

    tokens: tuple[str, ...]
    joiner: str = ""

    @property
    def size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (characters, or space-separated tokens when joiner is " ");
        InputError naming the first token outside the vocabulary."""
        index = {t: i for i, t in enumerate(self.tokens)}
        pieces = text.split() if self.joiner == " " else list(text)
        for p in pieces:
            if p not in index:
                shown = ", ".join(repr(t) for t in self.tokens[:12]) + (", ..." if self.size > 12 else "")
                raise InputError(f"{p!r} is not in the vocabulary ({self.size} tokens: {shown})")
        return [index[p] for p in pieces]

    def decode(self, ids: Sequence[int]) -> str:
        return self.joiner.join(self.tokens[int(i)] for i in ids)


# ---------------------------------------------------------------------------- copy / reverse
@dataclass
class DigitSequences:
    """Copy or reverse L tokens drawn from V symbols; `n_test` held-out sequences."""

    kind: str  # "copy" or "reverse"
    n_symbols: int = 10  # V - 1 symbols "0" .. "V-2", plus the separator
    length: int = 6  # L
    n_test: int = 500
    seed: int = 0
    vocab: Vocabulary = field(init=False)
    test_x: np.ndarray = field(init=False)  # (n_test, L) held-out questions
    _test_codes: np.ndarray = field(init=False)  # their codes in base n_symbols, sorted

    def __post_init__(self) -> None:
        if self.kind not in ("copy", "reverse"):
            raise InputError(f"unknown sequence task {self.kind!r}; choose copy or reverse")
        if not 2 <= self.n_symbols <= 100:
            raise InputError(f"the number of symbols must be 2 .. 100, got {self.n_symbols}")
        if not 1 <= self.length <= 64:
            raise InputError(f"the sequence length must be 1 .. 64, got {self.length}")
        space = self.n_symbols**self.length
        if self.n_test > space // 2:
            raise InputError(f"{self.n_test} held-out sequences of {space} possible would leave too few to train on")
        self.vocab = Vocabulary(tuple(str(i) for i in range(self.n_symbols)) + (SEPARATOR,), joiner=" ")
        rng = np.random.default_rng([self.seed, 1])  # a stream of its own: the test set never moves
        codes: set[int] = set()
        rows: list[np.ndarray] = []
        while len(rows) < self.n_test:
            x = rng.integers(0, self.n_symbols, size=self.length)
            c = self._code(x[None, :])[0]
            if c not in codes:
                codes.add(c)
                rows.append(x)
        self.test_x = np.array(rows, dtype=np.int64).reshape(self.n_test, self.length)
        self._test_codes = np.array(sorted(codes), dtype=np.float64)

    @property
    def context(self) -> int:
        """T = 2L: the model reads x_1 .. x_L > y_1 .. y_{L-1} and predicts each next token."""
        return 2 * self.length

    def _code(self, x: np.ndarray) -> np.ndarray:
        """Each row of x (N, L) as one number in base n_symbols (float64: exact below 2^53)."""
        weights = float(self.n_symbols) ** np.arange(self.length - 1, -1, -1)
        return x @ weights

    def answer(self, x: np.ndarray) -> np.ndarray:
        """y for questions x (N, L)."""
        return x.copy() if self.kind == "copy" else x[:, ::-1].copy()

    def encode_pairs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(idx, targets), each (N, 2L), for questions x (N, L)."""
        N, L = x.shape
        sep = np.full((N, 1), self.n_symbols, dtype=np.int64)  # the separator's id
        full = np.concatenate([x, sep, self.answer(x)], axis=1)  # (N, 2L + 1)
        idx, targets = full[:, :-1].copy(), full[:, 1:].copy()
        targets[:, : L - 1] = IGNORE  # no loss on predicting the question itself
        return idx, targets

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """B training pairs, none of them a held-out question."""
        x = rng.integers(0, self.n_symbols, size=(batch_size, self.length))
        held_out = np.isin(self._code(x), self._test_codes)
        while held_out.any():  # redraw those rows only (rare: n_test is small beside V^L)
            x[held_out] = rng.integers(0, self.n_symbols, size=(int(held_out.sum()), self.length))
            held_out = np.isin(self._code(x), self._test_codes)
        return self.encode_pairs(x)

    def summary(self) -> str:
        return (
            f"{self.kind}: {self.length} tokens of {self.n_symbols} symbols, then {SEPARATOR!r} and the "
            f"{'same' if self.kind == 'copy' else 'reversed'} tokens; {self.n_test} held-out sequences"
        )


# ---------------------------------------------------------------------------- text
def bundled_text() -> str:
    """Python's own bundled documentation (pydoc_data.topics), about 465,000 characters.

    Some Python builds leave pydoc_data out; then this says so and names --data FILE.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise InputError(
            "this Python has no bundled documentation (pydoc_data, left out of some builds) "
            "to train on; give a UTF-8 text with --data FILE"
        ) from None
    return "\n".join(topics[k] for k in topics)


def stand_in_words(limit: int = 32_000) -> list[str]:
    """Up to `limit` distinct lowercase words of 3-10 letters from the bundled docs, in first-seen order.

    A stand-in for a list of names where there is none (nothing is downloaded): 2,447 words
    averaging 6.8 letters, close to names' 6, so a model of them costs about the same per
    document; what it learns is the spelling of the docs' words, not of names.
    """
    seen: dict[str, None] = {}
    for word in re.findall(r"\b[a-z]{3,10}\b", bundled_text()):
        seen.setdefault(word, None)
        if len(seen) >= limit:
            break
    return list(seen)


#: the largest --data file read (chars and lines hold ~25 bytes of arrays and strings per character:
#: 10 MB of text is about 250 MB of memory; the bundled docs are 0.5 MB).
MAX_TEXT_BYTES = 10_000_000


def read_text(path: str | Path) -> str:
    """The UTF-8 text of `path`; InputError for a missing, unreadable, non-UTF-8 or empty file, for
    anything but a regular file (a device, a FIFO: refused at once, never read), and for a file
    larger than MAX_TEXT_BYTES (the message says how to cut it).

    A leading byte-order mark (which some editors write) is dropped: it is not a character of the text."""
    path = Path(path)
    try:
        raw = read_regular_file(
            path, MAX_TEXT_BYTES, "--data", f"train on an excerpt (e.g. head -c {MAX_TEXT_BYTES} {path} > part.txt)"
        )
    except FileNotFoundError:
        raise InputError(f"--data {path}: no such file") from None
    try:
        # as a text-mode read would: universal newlines, so a CRLF file is the same text as its LF copy
        text = raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as err:
        raise InputError(f"--data {path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not text.strip():
        raise InputError(
            f"--data {path}: the file is empty" if not text else f"--data {path}: the file holds only whitespace"
        )
    return text


@dataclass
class CharText:
    """Character-level next-token prediction on `text`: the first 90% trains, the rest is held out."""

    text: str
    name: str = "text"
    val_fraction: float = 0.1
    vocab: Vocabulary = field(init=False)
    train_ids: np.ndarray = field(init=False)  # (N_train,)
    val_ids: np.ndarray = field(init=False)  # (N_val,)

    def __post_init__(self) -> None:
        self.vocab = Vocabulary(tuple(sorted(set(self.text))))
        lookup = {c: i for i, c in enumerate(self.vocab.tokens)}
        ids = np.fromiter((lookup[c] for c in self.text), dtype=np.int64, count=len(self.text))
        n_train = int(round(len(ids) * (1.0 - self.val_fraction)))
        self.train_ids, self.val_ids = ids[:n_train], ids[n_train:]
        if len(self.val_ids) < 2 or len(self.train_ids) < 2:
            raise InputError(f"{self.name}: {len(ids)} characters are too few to split 90/10 for training")

    def _windows(self, ids: np.ndarray, starts: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
        offsets = starts[:, None] + np.arange(T + 1)[None, :]  # (B, T + 1)
        chunk = ids[offsets]
        return chunk[:, :-1].copy(), chunk[:, 1:].copy()

    def batch(self, rng: np.random.Generator, batch_size: int, T: int) -> tuple[np.ndarray, np.ndarray]:
        """B random windows of T + 1 training characters: (idx, targets), each (B, T)."""
        if len(self.train_ids) <= T:
            raise InputError(
                f"{self.name}: the training text ({len(self.train_ids)} characters) is shorter than the context {T}"
            )
        starts = rng.integers(0, len(self.train_ids) - T, size=batch_size)
        return self._windows(self.train_ids, starts, T)

    def val_batches(self, T: int, max_windows: int, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Evenly spaced held-out windows (the same ones at every evaluation), in batches."""
        T_eff = min(T, len(self.val_ids) - 1)
        n = min(max_windows, len(self.val_ids) - T_eff)
        starts = np.linspace(0, len(self.val_ids) - T_eff - 1, n).astype(np.int64)
        return [self._windows(self.val_ids, starts[i : i + batch_size], T_eff) for i in range(0, n, batch_size)]

    def unigram_val_loss(self) -> float:
        """Nats per held-out character of an add-one unigram model of the training text: the floor to beat."""
        counts = np.bincount(self.train_ids, minlength=self.vocab.size) + 1.0
        return float(-np.mean(np.log(counts[self.val_ids] / counts.sum())))

    def summary(self) -> str:
        return (
            f"{self.name}: {len(self.train_ids):,} training / {len(self.val_ids):,} held-out characters, "
            f"{self.vocab.size} distinct"
        )


@dataclass
class LineDocuments:
    """Every non-empty line of a text is a document `BOUNDARY chars BOUNDARY`; 90% of them (shuffled
    with `seed`) train, the rest are held out."""

    text: str
    name: str = "lines"
    val_fraction: float = 0.1
    seed: int = 0
    vocab: Vocabulary = field(init=False)
    train_docs: list[np.ndarray] = field(init=False)
    val_docs: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        lines = [line.strip() for line in self.text.splitlines() if line.strip()]
        if len(lines) < 10:
            raise InputError(
                f"{self.name}: {len(lines)} non-empty line{'s are' if len(lines) != 1 else ' is'} too few "
                "(at least 10, one document each)"
            )
        self.vocab = Vocabulary((BOUNDARY, *sorted(set("".join(lines)))))
        lookup = {c: i for i, c in enumerate(self.vocab.tokens)}
        docs = [np.array([0, *(lookup[c] for c in line), 0], dtype=np.int64) for line in lines]
        order = np.random.default_rng([self.seed, 2]).permutation(len(docs))
        n_val = max(1, int(round(len(docs) * self.val_fraction)))
        self.val_docs = [docs[i] for i in order[:n_val]]
        self.train_docs = [docs[i] for i in order[n_val:]]

    @property
    def context(self) -> int:
        """T: the longest document's length minus one (every document fits whole)."""
        return max(len(d) for d in self.train_docs + self.val_docs) - 1

    def pack(self, docs: Sequence[np.ndarray], T: int) -> tuple[np.ndarray, np.ndarray]:
        """(idx, targets) (B, T) for whole documents (cut to T + 1 tokens), padded with IGNORE targets."""
        idx = np.zeros((len(docs), T), dtype=np.int64)  # padding reads the boundary token
        targets = np.full((len(docs), T), IGNORE, dtype=np.int64)
        for row, d in enumerate(docs):
            d = d[: T + 1]
            idx[row, : len(d) - 1] = d[:-1]
            targets[row, : len(d) - 1] = d[1:]
        return idx, targets

    def batch(self, rng: np.random.Generator, batch_size: int, T: int) -> tuple[np.ndarray, np.ndarray]:
        """B training documents drawn at random (one document a step with batch_size 1)."""
        picks = rng.integers(0, len(self.train_docs), size=batch_size)
        return self.pack([self.train_docs[i] for i in picks], T)

    def val_batches(self, T: int, max_docs: int, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
        docs = self.val_docs[:max_docs]
        return [self.pack(docs[i : i + batch_size], T) for i in range(0, len(docs), batch_size)]

    def unigram_val_loss(self, T: int, max_docs: int) -> float:
        """Nats per held-out token of an add-one unigram model of the training documents' tokens
        (every character and the closing boundary), on the tokens `val_batches(T, max_docs)`
        scores: the floor a model of the lines has to beat."""
        predicted = lambda docs: np.concatenate([d[1 : T + 1] for d in docs])  # noqa: E731 - the targets of pack()
        counts = np.bincount(predicted(self.train_docs), minlength=self.vocab.size) + 1.0
        return float(-np.mean(np.log(counts[predicted(self.val_docs[:max_docs])] / counts.sum())))

    def summary(self) -> str:
        return (
            f"{self.name}: {len(self.train_docs):,} training / {len(self.val_docs):,} held-out lines, "
            f"{self.vocab.size - 1} distinct characters, longest {self.context + 1} tokens with boundaries"
        )
