"""``sparse``: bag-of-words classification where the evidence is in rare words."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tuner.task.contract import Problem, Task

VOCABULARY = 20_000
DOCUMENT_LENGTH = 24
DOCUMENTS = 20_000
VALIDATION_SIZE = 2_000
ZIPF_EXPONENT = 1.1
INFORMATIVE_WORDS = 400  # rare words (frequency rank >= 1000) that decide the label
LABEL_NOISE = 0.05
DATA_SEED = 20240502


@lru_cache(maxsize=1)
def _dataset() -> tuple[np.ndarray, np.ndarray]:
    """Documents of word ids drawn from a Zipf law, labelled by the few rare words they contain.

    Background words: word ``r`` (by frequency rank) has probability proportional to
    ``(r + 1) ** -1.1``; they carry no signal. Then each document gets one to three of 400
    informative words, chosen among the ranks past 1,000, each with a weight of +-(1..2); the
    label is the sign of their summed weight, flipped for 5% of the documents. Each informative
    word shows up in about 0.5% of the documents, while the common words are in nearly every
    one: per-coordinate step sizes (Adagrad and its descendants) matter here.
    """
    rng = np.random.default_rng(DATA_SEED)
    frequency = (np.arange(VOCABULARY) + 1.0) ** -ZIPF_EXPONENT
    words = rng.choice(
        VOCABULARY, size=(DOCUMENTS, DOCUMENT_LENGTH), p=frequency / frequency.sum()
    )
    informative = rng.choice(np.arange(1000, VOCABULARY), size=INFORMATIVE_WORDS, replace=False)
    weights = rng.choice([-1.0, 1.0], size=INFORMATIVE_WORDS) * rng.uniform(1.0, 2.0,
                                                                             INFORMATIVE_WORDS)
    counts = 1 + rng.binomial(2, 0.5, size=DOCUMENTS)
    score = np.zeros(DOCUMENTS)
    for document, count in enumerate(counts):
        chosen = rng.choice(INFORMATIVE_WORDS, size=count, replace=False)
        slots = rng.choice(DOCUMENT_LENGTH, size=count, replace=False)
        words[document, slots] = informative[chosen]
        score[document] = weights[chosen].sum()
    flip = rng.uniform(size=DOCUMENTS) < LABEL_NOISE
    labels = ((score > 0) != flip).astype(np.float32)
    return words.astype(np.int64), labels


class BagOfWords(nn.Module):
    """A linear classifier on word counts: one weight per word, summed over the document."""

    def __init__(self, vocabulary: int) -> None:
        super().__init__()
        self.weights = nn.EmbeddingBag(vocabulary, 1, mode="sum")
        self.bias = nn.Parameter(torch.zeros(1))
        nn.init.zeros_(self.weights.weight)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        return self.weights(words).squeeze(-1) + self.bias


class Sparse(Task):
    """Logistic regression on 20,000-word bags of words (18,000 documents for training, 2,000 for
    validation); the signal is carried by rare words. 1,560 steps of 64 documents: 5.5 epochs."""

    name = "sparse"
    summary = "Linear classifier on bags of 20,000 Zipf-distributed words; signal in rare words"
    kind = "sparse"
    data = "generated (Zipf bag-of-words documents, labels from rare words)"
    metric = "val_accuracy"
    direction = "maximize"
    target = 0.80
    budget = 1560
    eval_every = 78
    batch_size = 64
    unbatchable = (
        "torch's embedding bag has no vmap rule: a batch would run it once per configuration "
        "in a loop, slower than training them one by one"
    )

    def build(self, seed: int, device: torch.device) -> Problem:
        words, labels = _dataset()
        order = np.random.default_rng(seed).permutation(DOCUMENTS)
        x = torch.from_numpy(words[order]).to(device)
        y = torch.from_numpy(labels[order]).to(device)
        val = VALIDATION_SIZE
        model = BagOfWords(VOCABULARY).to(device)
        return Problem(model=model, train=(x[val:], y[val:]), val=(x[:val], y[:val]))

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        words, labels = batch
        return F.binary_cross_entropy_with_logits(model(words), labels)

    def evaluate(self, model: nn.Module, problem: Problem) -> float:
        words, labels = problem.val
        return float(((model(words) > 0).float() == labels).float().mean())
