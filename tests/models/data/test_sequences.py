"""Sequence data (models/data/sequences.py): formats, held-out splits, vocabularies, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError
from models.data.sequences import IGNORE, CharText, DigitSequences, LineDocuments, Vocabulary, bundled_text, read_text


def test_reverse_pairs_take_loss_on_the_answer_only() -> None:
    task = DigitSequences("reverse", n_symbols=10, length=4, n_test=20)
    idx, targets = task.encode_pairs(np.array([[3, 1, 4, 1]]))
    sep = task.n_symbols
    assert idx.tolist() == [[3, 1, 4, 1, sep, 1, 4, 1]]
    assert targets.tolist() == [[IGNORE, IGNORE, IGNORE, sep, 1, 4, 1, 3]]
    assert task.vocab.decode([3, 1, 4, sep]) == "3 1 4 >" and task.vocab.encode("3 1 4 >") == [3, 1, 4, sep]


def test_training_batches_never_hold_a_held_out_question() -> None:
    task = DigitSequences("copy", n_symbols=3, length=3, n_test=13)  # 27 questions, 13 held out
    held = {tuple(x) for x in task.test_x.tolist()}
    assert len(held) == 13
    idx, _ = task.batch(np.random.default_rng(0), 2000)
    assert not {tuple(x) for x in idx[:, :3].tolist()} & held
    assert np.array_equal(task.test_x, DigitSequences("copy", n_symbols=3, length=3, n_test=13).test_x)  # fixed


def test_char_text_split_and_unigram_floor() -> None:
    data = CharText(bundled_text(), name="pydoc")
    assert data.vocab.size == 103 and len(data.val_ids) == pytest.approx(
        0.1 * (len(data.train_ids) + len(data.val_ids)), abs=1
    )
    assert data.unigram_val_loss() == pytest.approx(3.24, abs=0.005)  # add-one unigram, nats per character
    idx, targets = data.batch(np.random.default_rng(0), 4, 16)
    assert idx.shape == targets.shape == (4, 16) and np.array_equal(idx[:, 1:], targets[:, :-1])
    with pytest.raises(InputError, match="'\\\\x00' is not in the vocabulary"):
        data.vocab.encode("a\x00")


def test_line_documents_are_wrapped_in_the_boundary_and_padded() -> None:
    names = "\n".join(["ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo", "kim", ""])
    data = LineDocuments(names, seed=0)
    assert data.vocab.tokens[0] == "\n" and data.context == 4  # "\nada\n" has 5 tokens
    idx, targets = data.pack([np.array(data.vocab.encode("\ncy\n"))], T=4)
    assert data.vocab.decode(idx[0, :3]) == "\ncy" and targets[0, 3] == IGNORE
    assert len(data.train_docs) + len(data.val_docs) == 11


def test_bad_data_gives_one_clear_error(tmp_path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_text(tmp_path / "missing.txt")
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="not UTF-8"):
        read_text(tmp_path / "bin")
    with pytest.raises(InputError, match="too few"):
        LineDocuments("one\ntwo")
    with pytest.raises(InputError, match="copy or reverse"):
        DigitSequences("sort")
    assert Vocabulary(("a", "b")).decode([1, 0]) == "ba"


def test_the_lines_unigram_floor_is_the_add_one_model_of_the_scored_tokens() -> None:
    from models.data.sequences import LineDocuments

    data = LineDocuments("\n".join(["ab", "abb", "ba", "b", "aab", "bb", "a", "abab", "ba", "bbb"]), seed=0)
    T = data.context
    train = np.concatenate([d[1:] for d in data.train_docs])
    val = np.concatenate([d[1:] for d in data.val_docs])
    counts = np.bincount(train, minlength=data.vocab.size) + 1.0
    expected = -np.mean(np.log(counts[val] / counts.sum()))
    assert data.unigram_val_loss(T, 100) == pytest.approx(expected, rel=1e-12)
    _, targets = data.val_batches(T, 100, 4)[0]
    assert (targets != -1).sum() == len(val)  # the same tokens val_loss is taken over


def test_a_leading_byte_order_mark_is_not_a_character_of_the_text(tmp_path) -> None:
    (tmp_path / "bom.txt").write_bytes("\ufeffana\nbob\n".encode("utf-8"))
    (tmp_path / "plain.txt").write_text("ana\nbob\n", encoding="utf-8")
    assert read_text(tmp_path / "bom.txt") == read_text(tmp_path / "plain.txt") == "ana\nbob\n"
