"""Precision and recall of generated samples (Kynkäänniemi et al.): realism and coverage apart."""

from __future__ import annotations

import pytest
import torch

from brushwork.errors import BrushworkError
from brushwork.judge.distribution import precision_recall


def test_precision_and_recall_tell_realism_from_coverage():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(600, 8, generator=gen, dtype=torch.float64)
    same = torch.randn(600, 8, generator=gen, dtype=torch.float64)
    precision, recall = precision_recall(real, same, chunk=128)
    assert precision > 0.8 and recall > 0.8
    # mode collapse: every sample realistic, little of the variety covered
    collapsed = real[:20].repeat(30, 1) + 0.01 * torch.randn(600, 8, generator=gen, dtype=torch.float64)
    precision, recall = precision_recall(real, collapsed)
    assert precision > 0.95 and recall < 0.3
    # samples off the data: none realistic, none covering
    assert precision_recall(real, same + 20.0) == (0.0, 0.0)


def test_precision_recall_needs_more_samples_than_neighbours():
    with pytest.raises(BrushworkError, match="at least 4"):
        precision_recall(torch.randn(3, 2), torch.randn(10, 2), k=3)
