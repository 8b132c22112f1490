"""Thin-plate-spline geometry as pure functions: control grids, the TPS solve, dense sampling grids, warps.

Convention (the only one in this project):
  points and grids are normalised (x, y) in [-1, 1], x to the right, y down, (B, ..., 2);
  a sampling grid maps each OUTPUT pixel to the INPUT location it reads, for F.grid_sample;
  F.grid_sample always runs with align_corners=False, so -1 and 1 are the outer pixel edges.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def control_points(grid_size: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Regular grid_size x grid_size TPS control points covering [-1, 1]^2, row-major in y.

    Returns:
        (G*G, 2) normalised (x, y).
    """
    if grid_size < 2:
        raise ValueError(f"grid_size must be at least 2, got {grid_size}")
    axis = torch.linspace(-1.0, 1.0, grid_size, dtype=dtype, device=device)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1)


def pixel_grid(height: int, width: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised (x, y) of every pixel centre under align_corners=False: (H, W, 2)."""
    ys = (torch.arange(height, dtype=dtype, device=device) * 2 + 1) / height - 1
    xs = (torch.arange(width, dtype=dtype, device=device) * 2 + 1) / width - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x, y], dim=-1)


def _radial(r2: torch.Tensor) -> torch.Tensor:
    """TPS kernel U(r) = r^2 log r^2, with U(0) = 0."""
    return r2 * torch.log(r2.clamp_min(1e-12))


def _check_points(name: str, pts: torch.Tensor) -> None:
    if pts.dim() != 3 or pts.shape[-1] != 2:
        raise ValueError(f"expected {name} of shape (B, N, 2), got {tuple(pts.shape)}")


def tps_solve(control: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Fit the thin-plate spline f with f(control_i) = values_i exactly.

    Args:
        control: (B, N, 2) control points (N >= 3, not all collinear).
        values: (B, N, 2) where each control point must map to.

    Returns:
        (B, N + 3, 2) coefficients: N radial weights, then the affine part (1, x, y).
    """
    _check_points("control", control)
    _check_points("values", values)
    if control.shape != values.shape:
        raise ValueError(f"control {tuple(control.shape)} and values {tuple(values.shape)} must match")
    b, n, _ = control.shape
    k = _radial(torch.cdist(control, control).square())  # (B, N, N)
    p = torch.cat([torch.ones_like(control[..., :1]), control], dim=-1)  # (B, N, 3)
    top = torch.cat([k, p], dim=-1)
    bottom = torch.cat(
        [p.transpose(1, 2), torch.zeros(b, 3, 3, dtype=control.dtype, device=control.device)], -1
    )
    system = torch.cat([top, bottom], dim=1)  # (B, N+3, N+3)
    rhs = torch.cat([values, torch.zeros(b, 3, 2, dtype=values.dtype, device=values.device)], dim=1)
    return torch.linalg.solve(system, rhs)


def tps_transform(points: torch.Tensor, control: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """Evaluate the spline fitted by `tps_solve` at `points` (B, M, 2); returns (B, M, 2)."""
    _check_points("points", points)
    basis = _tps_basis(points, control)  # (B, M, N+3)
    return basis @ coefficients


def _tps_basis(points: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    u = _radial(torch.cdist(points, control).square())  # (B, M, N)
    return torch.cat([u, torch.ones_like(points[..., :1]), points], dim=-1)


@functools.lru_cache(maxsize=16)
def _grid_operator(grid_size: int, height: int, width: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """(H*W, N) matrix A with grid = A @ (source control points): the TPS solve is linear in its values."""
    ctrl = control_points(grid_size, dtype=torch.float64)[None]
    n = ctrl.shape[1]
    # Solving against the identity gives the coefficient map for any right-hand side at once.
    eye = torch.eye(n, dtype=torch.float64)[None]
    k = _radial(torch.cdist(ctrl, ctrl).square())
    p = torch.cat([torch.ones(1, n, 1, dtype=torch.float64), ctrl], dim=-1)
    system = torch.cat(
        [
            torch.cat([k, p], -1),
            torch.cat([p.transpose(1, 2), torch.zeros(1, 3, 3, dtype=torch.float64)], -1),
        ],
        1,
    )
    rhs = torch.cat([eye, torch.zeros(1, 3, n, dtype=torch.float64)], dim=1)
    coeff_map = torch.linalg.solve(system, rhs)  # (1, N+3, N)
    pixels = pixel_grid(height, width, dtype=torch.float64).reshape(1, -1, 2)
    operator = _tps_basis(pixels, ctrl) @ coeff_map  # (1, H*W, N)
    return operator[0].to(dtype=dtype, device=device)


def tps_grid(theta: torch.Tensor, grid_size: int, height: int, width: int) -> torch.Tensor:
    """Dense sampling grid of the TPS that moves the regular control grid by `theta`.

    theta holds per-control-point offsets of the SOURCE locations, so theta = 0 is the identity warp and
    the map is linear in theta (coarse theta + fine delta_theta compose by addition).

    Args:
        theta: (B, 2*G*G) offsets, laid out as (G*G, 2) (x, y) pairs flattened.
        grid_size: G.
        height, width: output size.

    Returns:
        (B, H, W, 2) grid for `warp`.
    """
    n = grid_size * grid_size
    if theta.dim() != 2 or theta.shape[1] != 2 * n:
        raise ValueError(f"expected theta of shape (B, {2 * n}), got {tuple(theta.shape)}")
    operator = _grid_operator(grid_size, height, width, theta.dtype, str(theta.device))
    # The TPS through (base -> base) is the identity, so the grid is the pixel grid plus the spline of the
    # offsets alone; this keeps theta = 0 exact in float32 instead of cancelling large radial weights.
    offsets = operator @ theta.view(-1, n, 2)  # (B, H*W, 2)
    identity = pixel_grid(height, width, dtype=theta.dtype, device=theta.device)
    return identity + offsets.view(-1, height, width, 2)


def warp(image: torch.Tensor, grid: torch.Tensor, *, padding: str = "border") -> torch.Tensor:
    """Sample `image` (B, C, H_in, W_in) at `grid` (B, H, W, 2) bilinearly; returns (B, C, H, W).

    Args:
        padding: "border" for images on a white backdrop (cloth), "zeros" for masks.
    """
    if image.dim() != 4:
        raise ValueError(f"expected image of shape (B, C, H, W), got {tuple(image.shape)}")
    if grid.dim() != 4 or grid.shape[-1] != 2 or grid.shape[0] != image.shape[0]:
        raise ValueError(f"expected grid of shape ({image.shape[0]}, H, W, 2), got {tuple(grid.shape)}")
    return F.grid_sample(image, grid, mode="bilinear", padding_mode=padding, align_corners=False)


@functools.lru_cache(maxsize=4)
def _coefficient_map(grid_size: int) -> torch.Tensor:
    """(N + 3, N) float64: TPS coefficients for each unit control value (the solve is linear in the values)."""
    ctrl = control_points(grid_size, dtype=torch.float64)[None]
    n = ctrl.shape[1]
    k = _radial(torch.cdist(ctrl, ctrl).square())
    p = torch.cat([torch.ones(1, n, 1, dtype=torch.float64), ctrl], dim=-1)
    system = torch.cat(
        [
            torch.cat([k, p], -1),
            torch.cat([p.transpose(1, 2), torch.zeros(1, 3, 3, dtype=torch.float64)], -1),
        ],
        1,
    )
    rhs = torch.cat(
        [torch.eye(n, dtype=torch.float64)[None], torch.zeros(1, 3, n, dtype=torch.float64)], dim=1
    )
    return torch.linalg.solve(system, rhs)[0]


def tps_points(theta: torch.Tensor, grid_size: int, points: torch.Tensor) -> torch.Tensor:
    """The TPS of `tps_grid` evaluated at arbitrary output points: where each point reads the input.

    `tps_grid(theta, G, H, W)` equals `tps_points(theta, G, pixel_grid(H, W))`; this form evaluates the same
    warp at any resolution or on any window of the output (the pipeline composes at the photo's size).

    Args:
        theta: (B, 2*G*G) offsets, as for `tps_grid`.
        grid_size: G.
        points: (..., 2) normalised (x, y) output locations, shared by the batch.

    Returns:
        (B, ..., 2) normalised input locations.
    """
    n = grid_size * grid_size
    if theta.dim() != 2 or theta.shape[1] != 2 * n:
        raise ValueError(f"expected theta of shape (B, {2 * n}), got {tuple(theta.shape)}")
    if points.shape[-1] != 2:
        raise ValueError(f"expected points of shape (..., 2), got {tuple(points.shape)}")
    ctrl = control_points(grid_size, dtype=theta.dtype, device=theta.device)[None]
    coeff_map = _coefficient_map(grid_size).to(dtype=theta.dtype, device=theta.device)  # (N+3, N)
    flat = points.reshape(1, -1, 2).to(theta.dtype)
    operator = _tps_basis(flat, ctrl)[0] @ coeff_map  # (M, N)
    offsets = torch.einsum("mn,bnc->bmc", operator, theta.view(-1, n, 2))  # (B, M, 2)
    return points.to(theta.dtype) + offsets.reshape(theta.shape[0], *points.shape)
