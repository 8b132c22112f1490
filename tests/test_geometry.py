import pytest
import torch

from sievenet.geometry import control_points, pixel_grid, tps_grid, tps_solve, tps_transform, warp


def test_smoke_shapes():
    theta = torch.zeros(2, 2 * 25)
    grid = tps_grid(theta, 5, 64, 48)
    assert grid.shape == (2, 64, 48, 2)
    out = warp(torch.rand(2, 3, 64, 48), grid)
    assert out.shape == (2, 3, 64, 48)


def test_no_warp_is_identity():
    image = torch.rand(2, 3, 64, 48)
    grid = tps_grid(torch.zeros(2, 50), 5, 64, 48)
    assert torch.equal(grid, pixel_grid(64, 48).expand(2, -1, -1, -1))
    assert torch.allclose(warp(image, grid), image, atol=1e-5)


def test_tps_passes_through_control_points():
    gen = torch.Generator().manual_seed(1)
    ctrl = control_points(4)[None].repeat(3, 1, 1)
    values = ctrl + 0.2 * torch.randn(3, 16, 2, generator=gen)
    coeff = tps_solve(ctrl.double(), values.double())
    assert torch.allclose(tps_transform(ctrl.double(), ctrl.double(), coeff), values.double(), atol=1e-9)


def test_dense_grid_matches_general_solve():
    """The cached linear operator behind tps_grid equals solving the spline and evaluating it per pixel."""
    gen = torch.Generator().manual_seed(2)
    theta = 0.1 * torch.randn(2, 50, generator=gen, dtype=torch.float64)
    ctrl = control_points(5, dtype=torch.float64)[None].repeat(2, 1, 1)
    coeff = tps_solve(ctrl, ctrl + theta.view(2, 25, 2))
    pixels = pixel_grid(16, 12, dtype=torch.float64).reshape(1, -1, 2).repeat(2, 1, 1)
    expected = tps_transform(pixels, ctrl, coeff).view(2, 16, 12, 2)
    assert torch.allclose(tps_grid(theta, 5, 16, 12), expected, atol=1e-10)


def test_warp_moves_content_the_expected_way():
    """A uniform +x offset of the source points makes each output pixel read from further right."""
    image = torch.zeros(1, 1, 32, 32)
    image[..., 20:24] = 1.0  # a vertical bar at columns 20..23
    theta = torch.zeros(1, 50)
    theta.view(1, 25, 2)[..., 0] = 8 * 2 / 32  # read 8 pixels to the right
    out = warp(image, tps_grid(theta, 5, 32, 32), padding="zeros")
    cols = out[0, 0].mean(0)
    assert cols[12:16].min() > 0.99 and cols[20:24].max() < 0.01


def test_gradcheck_warp_float64():
    gen = torch.Generator().manual_seed(3)
    theta = (0.05 * torch.randn(1, 2 * 9, generator=gen, dtype=torch.float64)).requires_grad_()
    image = torch.rand(1, 2, 8, 6, generator=gen, dtype=torch.float64).requires_grad_()

    def fn(t, img):
        return warp(img, tps_grid(t, 3, 8, 6))

    assert torch.autograd.gradcheck(fn, (theta, image), eps=1e-6, atol=1e-5)


def test_exceptions_name_the_shape():
    with pytest.raises(ValueError, match=r"\(B, 50\), got \(2, 49\)"):
        tps_grid(torch.zeros(2, 49), 5, 8, 8)
    with pytest.raises(ValueError, match=r"got \(3, 2\)"):
        tps_solve(torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="expected image"):
        warp(torch.zeros(3, 8, 8), torch.zeros(1, 8, 8, 2))
    with pytest.raises(ValueError, match="grid_size"):
        control_points(1)
