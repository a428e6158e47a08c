"""L-BFGS that stays on the device: no host synchronisation inside the loop, a handful of kernels a step.

``torch.optim.LBFGS`` reads several scalars back to the host every iteration (curvature and
tolerance checks) and runs the two-loop recursion as ~4 small kernels per stored pair: with the
100 pairs neural-style keeps, that is hundreds of launches and several syncs per step, which on a
GPU costs more than the network at 512 px. Here the pairs live in one ring of (s, y) rows and H·g
comes from the compact representation (Byrd, Nocedal & Schnabel 1994):

    H g = γ g + S p + γ Y q,   q = -R⁻¹ Sᵀg,   p = R⁻ᵀ((D + γ YᵀY) R⁻¹ Sᵀg - γ Yᵀg)

with R the upper triangle of SᵀY (oldest pair first) and D its diagonal: two tiny triangular solves
and two passes over the history, one product of the new s, y and g with every stored vector (which
keeps SᵀY and YᵀY up to date one row and column at a time) and one weighted sum for H·g. A pair
that fails the curvature test is stored as zeros (and the solves see a unit diagonal there) instead
of being skipped, so no branch depends on a device value.

A step dispatches about 35 operators whatever the history, all of fixed shapes on buffers allocated
once, and builds nothing on the host: the ring's order reaches the solves as a cyclic shift of the
small matrices (``torch.roll``), not as an index (#21: on a GPU a small step costs what it launches).
The curvature test and γ use the inner products in x's dtype, as torch's L-BFGS does; the solves run
in float64.

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
        if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
            raise ValueError("x must be contiguous (or channels-last)")
        self.x, self.m, self.lr = x, history, lr
        m, n, dev = history, x.numel(), x.device
        # Every buffer a step touches is allocated here and every view of one is taken here: a step builds
        # nothing on the host, allocates only its few temporaries and keeps the same shapes throughout.
        self.pairs = x.new_zeros(m, 2, n)  # ring of (s, y) pairs; slot j: pairs[j] = (s_j, y_j)
        self.flat_t = self.pairs.view(2 * m, n).T  # every s and y, one per column
        self.g = x.new_zeros(n)  # the latest gradient (the one before, while a new pair is formed)
        #: (s_new, y_new, g) . every stored vector, as computed and in float64.
        self.products = x.new_zeros(3, 2 * m)
        self.products64 = torch.zeros(3, 2 * m, dtype=torch.float64, device=dev)
        #: gram[0, i, k] = s_i . y_k, gram[1, i, k] = y_i . y_k, by ring slot; a slot without a pair has zeros
        #: and a unit diagonal in gram[0], where the triangular solves read it.
        self.gram = torch.zeros(2, m, m, dtype=torch.float64, device=dev)
        self.gram[0].diagonal().fill_(1)
        self.gamma = torch.ones((), dtype=torch.float64, device=dev)
        self.coef = x.new_zeros(m, 2)  # per slot: the coefficients of s_i and y_i in H g / gamma, less g
        self.sign = torch.tensor([1.0, -1.0], dtype=torch.float64, device=dev)

        def shaped(flat: torch.Tensor) -> torch.Tensor:  # the same memory in x's shape and strides
            return flat.as_strided(x.size(), x.stride(), flat.storage_offset())

        self.g_x = shaped(self.g)
        self.s = [self.pairs[j, 0] for j in range(m)]
        self.y = [self.pairs[j, 1] for j in range(m)]
        self.s_x = [shaped(v) for v in self.s]
        self.y_x = [shaped(v) for v in self.y]
        self.row_of = [self.gram[:, j, :] for j in range(m)]  # (s_j . y_i, y_j . y_i) for all i
        self.column_of = [self.gram[:, :, j] for j in range(m)]  # (s_i . y_j, y_i . y_j)
        self.diagonal_of = [self.gram[0, j, j] for j in range(m)]
        with_y = self.products64[1].view(m, 2)  # (s_i . y_new, y_i . y_new)
        self.new_row = self.products64[:2, 1::2]  # (s_new . y_i, y_new . y_i)
        self.new_column = with_y.T
        self.ys = [with_y[j, 0] for j in range(m)]
        self.yy = [with_y[j, 1] for j in range(m)]
        self.with_g = self.products64[2].view(m, 2)  # (s_i . g, y_i . g)

    @property
    def valid(self) -> torch.Tensor:
        """Which slots hold a pair (one that was rejected, or none yet, is stored as zeros)."""
        return self.gram[1].diagonal() > 0

    def run(self, closure: Callable[[], torch.Tensor], evaluations: int) -> None:
        """Call ``closure`` (which must set ``x.grad``) ``evaluations`` times with a step between each two, so
        the last evaluation is of the final ``x``: the count torch's L-BFGS takes as ``max_eval``."""
        if evaluations < 1:
            return
        x = self.x
        closure()
        with torch.no_grad():
            self.g_x.copy_(x.grad)
            t = (1 / self.g.abs().sum()).clamp(max=1) * -self.lr  # a cautious first step, as torch's L-BFGS takes
            torch.mul(self.g, t, out=self.s[0])
            x.add_(self.s_x[0])
        slot = 0
        for _ in range(evaluations - 2):  # one step even for a single evaluation, as torch takes
            closure()
            self._store_pair(slot)
            slot = self._step(slot)
        if evaluations > 1:
            closure()

    @torch.no_grad()
    def _store_pair(self, j: int) -> None:
        """Complete pair j (its s was written when x moved) with y = g - g_prev, or zero it when it fails the
        curvature test, and bring the inner products and gamma up to date: one product of the new s, y and g
        with the whole history."""
        grad = self.x.grad
        torch.sub(grad, self.g_x, out=self.y_x[j])
        self.g_x.copy_(grad)
        rejected = torch.dot(self.s[j], self.y[j]) <= 1e-10
        self.pairs[j].masked_fill_(rejected, 0)
        torch.mm(torch.stack((self.s[j], self.y[j], self.g)), self.flat_t, out=self.products)
        self.products64.copy_(self.products)
        self.row_of[j].copy_(self.new_row)
        self.column_of[j].copy_(self.new_column)
        self.diagonal_of[j].add_(rejected)  # a rejected pair's unit diagonal
        self.gamma = torch.where(rejected, self.gamma, self.ys[j] / self.yy[j])

    @torch.no_grad()
    def _step(self, j: int) -> int:
        """Move x by -lr H g, with pair j the newest; its s goes into the oldest slot, which it returns."""
        oldest = (j + 1) % self.m
        # The solves need the pairs oldest first: roll the ring's small matrices so (a cyclic shift, no index).
        sy, yy = torch.roll(self.gram, (-oldest, -oldest), dims=(1, 2)).unbind()
        with_g = torch.roll(self.with_g, -oldest, 0)
        r = sy.triu()
        u = torch.linalg.solve_triangular(r, with_g[:, :1], upper=True)
        yy.diagonal().add_(sy.diagonal() / self.gamma)  # D / gamma + YᵀY
        p = torch.linalg.solve_triangular(r.mT, torch.addmm(with_g[:, 1:], yy, u, beta=-1), upper=False)
        torch.mul(torch.roll(torch.cat((p, u), 1), oldest, 0), self.sign, out=self.coef)
        hg = torch.addmv(self.g, self.flat_t, self.coef.view(-1))  # H g / gamma
        torch.mul(hg, self.gamma * -self.lr, out=self.s[oldest])
        self.x.add_(self.s_x[oldest])
        return oldest
