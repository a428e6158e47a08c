"""L-BFGS that stays on the device: no host synchronisation inside the loop, a handful of kernels a step.

``torch.optim.LBFGS`` reads several scalars back to the host every iteration (curvature and
tolerance checks) and runs the two-loop recursion as ~4 small kernels per stored pair: with the
100 pairs neural-style keeps, that is hundreds of launches and several syncs per step, which on a
GPU costs more than the network at 512 px. Here the pairs live in two (m, n) matrices and H·g comes
from the compact representation (Byrd, Nocedal & Schnabel 1994):

    H g = γ g + S p + γ Y q,   q = -R⁻¹ Sᵀg,   p = R⁻ᵀ((D + γ YᵀY) R⁻¹ Sᵀg - γ Yᵀg)

with R the upper triangle of SᵀY and D its diagonal: a few matrix-vector products over the history
and two tiny triangular solves. The inner products SᵀY and YᵀY are kept up to date one row at a
time. A pair that fails the curvature test is stored as zeros (and the solves see a unit diagonal
there) instead of being skipped, so no branch depends on a device value.

Same semantics as ``torch.optim.LBFGS(lr, max_iter=N, max_eval=N, tolerance_grad=-1,
tolerance_change=-1)`` without a line search, which is what neural-style runs (N evaluations, N-1
steps): the same iterates up to rounding, except that a rejected pair still takes a slot in the
history.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class DeviceLBFGS:
    def __init__(self, x: torch.Tensor, history: int = 100, lr: float = 1.0):
        if not x.requires_grad or not x.is_leaf:
            raise ValueError("x must be a leaf tensor that requires grad")
        self.x, self.m, self.lr = x, history, lr
        n, dev = x.numel(), x.device
        self.S = x.new_zeros(history, n)  # steps, one per slot of a ring
        self.Y = x.new_zeros(history, n)  # gradient changes
        self.SY = torch.zeros(history, history, dtype=torch.float64, device=dev)  # SY[i, j] = s_i . y_j
        self.YY = torch.zeros(history, history, dtype=torch.float64, device=dev)
        self.valid = torch.zeros(history, dtype=torch.bool, device=dev)
        self.gamma = torch.ones((), dtype=torch.float64, device=dev)
        self.count = 0  # pairs stored (host-side: known without asking the device)
        self.next = 0

    def run(self, closure: Callable[[], torch.Tensor], evaluations: int) -> None:
        """Call ``closure`` (which must set ``x.grad``) ``evaluations`` times with a step between each two, so
        the last evaluation is of the final ``x``: the count torch's L-BFGS takes as ``max_eval``."""
        if evaluations < 1:
            return
        x = self.x
        closure()
        g = x.grad.detach().reshape(-1).clone()
        g_prev, d = g, -g
        t = (1 / g.abs().sum()).clamp(max=1) * self.lr  # a cautious first step, as torch's L-BFGS takes
        for n in range(1, max(2, evaluations)):  # one step even for a single evaluation, as torch does
            if n > 1:
                d = self._direction(d * t, g - g_prev, g)
                t = self.lr
            with torch.no_grad():
                x.add_((d * t).view_as(x))
            if n == evaluations:
                break
            g_prev = g
            closure()
            g = x.grad.detach().reshape(-1).clone()

    @torch.no_grad()
    def _direction(self, s: torch.Tensor, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Store the pair (s, y), then return -H g: one product with S and one with Y (several right-hand
        sides each), then the two that form H g. On a CPU those multi-column products read the history
        more slowly than single passes would (benchmarks/lbfgs_overhead.py), which is why the engine
        uses this class on CUDA only."""
        ys = s.double() @ y.double()
        ok = ys > 1e-10
        keep = ok.to(s.dtype)
        j = self.next
        self.S[j] = s * keep
        self.Y[j] = y * keep
        with_s = (self.S @ torch.stack([self.Y[j], g], 1)).double()  # s_i . y_j, s_i . g
        with_y = (self.Y @ torch.stack([self.S[j], self.Y[j], g], 1)).double()  # y_i . s_j, y_i . y_j, y_i . g
        self.SY[:, j] = with_s[:, 0]
        self.SY[j] = with_y[:, 0]
        self.YY[j] = with_y[:, 1]
        self.YY[:, j] = with_y[:, 1]
        self.gamma = torch.where(ok, ys / with_y[j, 1].clamp(min=1e-30), self.gamma)
        self.valid[j] = ok
        self.next = (j + 1) % self.m
        self.count = min(self.count + 1, self.m)

        slots = torch.tensor([(self.next - self.count + i) % self.m for i in range(self.count)], device=g.device)
        a, b = with_s[slots, 1], with_y[slots, 2]
        sy = self.SY[slots][:, slots]
        diag = torch.where(self.valid[slots], sy.diagonal(), torch.ones_like(a))
        r = sy.triu(1) + torch.diag(diag)
        gamma = self.gamma
        u = torch.linalg.solve_triangular(r, a[:, None], upper=True)
        rhs = diag[:, None] * u + gamma * (self.YY[slots][:, slots] @ u) - gamma * b[:, None]
        p = torch.linalg.solve_triangular(r.T, rhs, upper=False)
        coef_s = torch.zeros(self.m, dtype=torch.float64, device=g.device)
        coef_y = torch.zeros_like(coef_s)
        coef_s[slots] = p[:, 0]
        coef_y[slots] = -gamma * u[:, 0]
        hg = (gamma * g.double()).to(g.dtype) + coef_s.to(g.dtype) @ self.S + coef_y.to(g.dtype) @ self.Y
        return -hg
