import pytest
import torch

from brushwork.style import color
from brushwork.style.losses import (
    WeightedParts,
    blended_grams,
    content_loss,
    gram_matrix,
    relative_mse,
    style_loss,
    tv_loss,
)


def test_gram_matches_hand_computation():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    expected = torch.tensor([[[1 + 4, 3 + 8], [3 + 8, 9 + 16]]]) / 2
    assert torch.allclose(gram_matrix(f), expected)


def test_gram_does_not_depend_on_image_size():
    f = torch.rand(1, 5, 6, 7)
    tiled = f.repeat(1, 1, 3, 2)  # same statistics, six times the positions
    assert torch.allclose(gram_matrix(f), gram_matrix(tiled), atol=1e-6)


def test_relative_losses_are_scale_free():
    a, b = torch.rand(1, 4, 5, 5), torch.rand(1, 4, 5, 5)
    assert relative_mse(a, a) == 0
    assert torch.isclose(relative_mse(10 * a, 10 * b), relative_mse(a, b))
    # Scaling the activations (a wider or louder layer) leaves the style loss unchanged.
    ga = {"l": gram_matrix(b)}
    assert torch.isclose(style_loss({"l": a}, ga), style_loss({"l": 7 * a}, {"l": gram_matrix(7 * b)}))
    assert torch.isclose(content_loss({"l": a}, {"l": b}), relative_mse(a, b))


def test_style_loss_layer_weights():
    a, b = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    feats = {"x": a, "y": b}
    targets = {"x": gram_matrix(a), "y": gram_matrix(a)}  # x matches exactly, y does not
    only_x = style_loss(feats, targets, {"x": 1.0, "y": 0.0})
    only_y = style_loss(feats, targets, {"x": 0.0, "y": 1.0})
    assert only_x == 0 and only_y > 0


def test_blended_grams_mix_linearly():
    g1, g2 = {"l": torch.ones(1, 2, 2)}, {"l": torch.zeros(1, 2, 2)}
    assert torch.allclose(blended_grams([g1, g2], [0.25, 0.75])["l"], torch.full((1, 2, 2), 0.25))


def test_tv_loss():
    assert tv_loss(torch.full((1, 3, 8, 8), 0.3)) == 0
    assert tv_loss(torch.rand(1, 3, 8, 8)) > 0


def test_luminance_transfer_keeps_luma_and_takes_chroma():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):  # some draws need clipping (about one in ten), most do not
        stylised = torch.rand(1, 3, 6, 6, generator=generator) * 0.5 + 0.25
        content = torch.rand(1, 3, 6, 6, generator=generator) * 0.5 + 0.25
        out = color.luminance_transfer(stylised, content)
        yiq_out, yiq_s, yiq_c = color.rgb_to_yiq(out), color.rgb_to_yiq(stylised), color.rgb_to_yiq(content)
        # Where the stylised luma and the content's chroma make a colour inside [0, 1], that is the output;
        # elsewhere a channel is clipped, which moves luma and chroma a little.
        wanted = color.yiq_to_rgb(torch.cat([yiq_s[:, :1], yiq_c[:, 1:]], 1))
        exact = ((wanted >= 0) & (wanted <= 1)).all(dim=1)
        assert out.min() >= 0 and out.max() <= 1
        assert torch.allclose(yiq_out[:, 0][exact], yiq_s[:, 0][exact], atol=1e-4)
        assert torch.allclose(yiq_out[:, 1:].movedim(1, -1)[exact], yiq_c[:, 1:].movedim(1, -1)[exact], atol=1e-4)
        assert (yiq_out[:, 0] - yiq_s[:, 0]).abs().max() < 0.05


def test_yiq_round_trip():
    x = torch.rand(1, 3, 4, 4)
    assert torch.allclose(color.yiq_to_rgb(color.rgb_to_yiq(x)), x, atol=1e-5)


def test_colour_statistics_matching():
    torch.manual_seed(0)
    source = torch.rand(1, 3, 16, 16) * torch.tensor([0.3, 0.5, 0.2]).view(1, 3, 1, 1)
    reference = 0.2 + 0.5 * torch.rand(1, 3, 16, 16)
    out = color.match_color_statistics(source, reference)
    flat_o, flat_r = out[0].reshape(3, -1), reference[0].reshape(3, -1)
    assert torch.allclose(flat_o.mean(1), flat_r.mean(1), atol=0.01)
    assert torch.allclose(torch.cov(flat_o), torch.cov(flat_r), atol=0.005)


@pytest.mark.parametrize("shape", [(1, 16, 3, 3), (2, 4, 8, 5)])
def test_gram_is_symmetric(shape):
    g = gram_matrix(torch.rand(shape))
    assert torch.allclose(g, g.transpose(1, 2))


def test_gram_gradient_matches_autograd():
    f = torch.randn(2, 5, 4, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 5, 5, dtype=torch.float64)
    (weights * gram_matrix(f)).sum().backward()
    ours = f.grad.clone()
    f.grad = None
    flat = f.reshape(2, 5, 12)
    (weights * (flat @ flat.transpose(1, 2) / 12)).sum().backward()
    assert torch.allclose(ours, f.grad)
    assert torch.autograd.gradcheck(gram_matrix, (torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True),))


def test_gram_backward_for_a_symmetric_loss_is_the_general_one():
    f = torch.randn(2, 4, 3, 5, dtype=torch.float64, requires_grad=True)
    target = gram_matrix(torch.randn(2, 4, 3, 5, dtype=torch.float64))
    grads = []
    for symmetric in (False, True):
        (grad,) = torch.autograd.grad(((gram_matrix(f, symmetric_loss=symmetric) - target) ** 2).sum(), f)
        grads.append(grad)
    assert torch.allclose(*grads, rtol=1e-12, atol=0)
    assert grads[0].abs().max() > 0


def test_weighted_parts_weigh_and_sum_each_parts_errors():
    parts = WeightedParts({"a": torch.tensor([1.0, 2.0]), "none": torch.zeros(0), "b": torch.tensor([3.0])})
    errors = [torch.tensor(5.0, requires_grad=True), torch.tensor(7.0), torch.tensor(11.0, requires_grad=True)]
    vector = parts(errors)
    assert parts.names == ["a", "none", "b"] and vector.tolist() == [19.0, 0.0, 33.0]
    vector.sum().backward()
    assert errors[0].grad == 1.0 and errors[2].grad == 3.0
