"""The measurement model: UMI counts of single cells and the exact expected log-normalised value.

Counts
------
A cell ``c`` in cell state ``s`` of a condition has molecular steady state ``x_s`` (genes).
Its library size (total UMIs over the simulated genes) is ``L_c = L0 * exp(sd_L * z)``, ``z ~ N(0,1)``,
independent of its state: sequencing samples a fixed-size library from the cell's mRNA composition
``p_s = x_s / sum(x_s)`` (the assumption behind total-count normalisation). Each gene's count is
negative binomial, ``k ~ NB(mean L_c * p_si, theta_i)``, drawn as a Gamma-Poisson mixture
(``theta = inf``: Poisson), as in Splatter (Zappia et al., Genome Biology 2017) and SERGIO's
technical-noise step (Dibaeinia & Sinha, Cell Systems 2020). Expression is then processed as real
pipelines do: ``log1p(target_sum * k / sum_g k_g)`` (scanpy ``normalize_total`` + ``log1p``).

Expected value
--------------
The noise-free truth of a condition is the infinite-cell mean of that processed value,
``mean_s E_L E_k[log1p(target_sum * k / L)]``. It depends on a gene only through its composition
fraction ``p`` and its dispersion, so it is one smooth function ``T_theta(p)`` per dispersion class,
tabulated once on a fine log grid of ``p`` and interpolated:

* the library size is integrated by Gauss-Hermite quadrature over ``z``;
* the NB is written as a Gamma mixture of Poissons and the Gamma integral done by the trapezoidal
  rule in ``log(lambda)``, where the integrand is smooth and decays at both ends (so the rule
  converges geometrically);
* the Poisson expectation ``H(lambda) = E[log1p(c k)]`` is summed exactly for ``lambda <= 200`` and
  from its 4th-order moment expansion beyond (error below 1e-6).

The only approximation is normalising by ``L_c`` rather than by the realised total ``sum_g k_g``
(equal in expectation; the relative fluctuation of the total is about ``1/sqrt(L)``, which biases
the mean by ``O(1/L)``, about 1e-3 or less for realistic libraries). The test suite checks that the
pseudobulk of many sampled cells converges to the table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln

log = logging.getLogger(__name__)

__all__ = ["Log1pTable", "log1p_table", "sample_counts"]

_STEP = 0.025  # log-grid spacing of p, mu and lambda
_P_MIN = 1e-12
_LAMBDA_EXACT = 200.0


def _poisson_log1p(lam: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``H[j, q] = E[log1p(c_q k)]`` for ``k ~ Poisson(lam_j)``."""
    lam = np.asarray(lam, dtype=np.float64)
    out = np.empty((lam.size, c.size))
    small = lam <= _LAMBDA_EXACT
    if small.any():
        ls = lam[small]
        kmax = int(_LAMBDA_EXACT + 14 * np.sqrt(_LAMBDA_EXACT) + 20)
        k = np.arange(kmax + 1, dtype=np.float64)
        with np.errstate(divide="ignore"):
            logpmf = k[None, :] * np.log(ls)[:, None] - ls[:, None] - gammaln(k + 1)[None, :]
        pmf = np.exp(logpmf)
        out[small] = pmf @ np.log1p(np.outer(k, c))
    big = ~small
    if big.any():
        lb = lam[big][:, None]
        a = 1.0 + c[None, :] * lb
        d2 = -(c[None, :] ** 2) / a**2
        d3 = 2 * c[None, :] ** 3 / a**3
        d4 = -6 * c[None, :] ** 4 / a**4
        # central moments of the Poisson: lambda, lambda, 3 lambda^2 + lambda
        out[big] = np.log(a) + lb * d2 / 2 + lb * d3 / 6 + (3 * lb**2 + lb) * d4 / 24
    return out


@dataclass(frozen=True)
class Log1pTable:
    """``T[class, i] = E[log1p(target_sum k / L)]`` at composition fraction ``exp(log_p[i])``.

    Rows follow ``thetas`` (the dispersion classes; ``inf`` is Poisson).
    """

    thetas: np.ndarray
    log_p: np.ndarray
    values: np.ndarray

    def __call__(self, p: np.ndarray, theta_class: np.ndarray) -> np.ndarray:
        """Evaluate at fractions ``p`` (``[..., G]``) for genes of dispersion class index
        ``theta_class`` (``[G]``)."""
        p = np.asarray(p, dtype=np.float64)
        out = np.empty_like(p)
        lp_min = self.log_p[0]
        for k in range(len(self.thetas)):
            cols = np.nonzero(theta_class == k)[0]
            if cols.size == 0:
                continue
            pk = p[..., cols]
            with np.errstate(divide="ignore"):
                lp = np.log(pk)
            vals = np.interp(lp, self.log_p, self.values[k])
            tiny = lp < lp_min  # linear regime: E ~ p * const
            if tiny.any():
                vals = np.where(tiny, self.values[k, 0] * pk / np.exp(lp_min), vals)
            out[..., cols] = vals
        return out


def log1p_table(thetas, library_size: float, library_sd: float, target_sum: float,
                n_quad: int = 24) -> Log1pTable:
    """Tabulate the expected log-normalised value (see the module docstring). Cached."""
    thetas = tuple(float(t) for t in np.atleast_1d(thetas))
    return _log1p_table(thetas, float(library_size), float(library_sd), float(target_sum), int(n_quad))


@lru_cache(maxsize=16)
def _log1p_table(thetas: tuple[float, ...], library_size: float, library_sd: float,
                 target_sum: float, n_quad: int) -> Log1pTable:
    if library_sd > 0:
        z, w = np.polynomial.hermite_e.hermegauss(n_quad)
        w = w / w.sum()
    else:
        z, w = np.zeros(1), np.ones(1)
    L = library_size * np.exp(library_sd * z)
    c = target_sum / L
    log_p = np.arange(np.log(_P_MIN), _STEP / 2, _STEP)
    log_p[-1] = 0.0
    # mu = L_q * p spans [log L_min + log p_min, log L_max]. Both mu and lambda live on one grid of
    # step _STEP, so the Gamma mixing is a convolution of H with a kernel in log(lambda / mu); the
    # kernel extends far enough into both tails for any class (left: the integrand decays like
    # (lambda/mu)^(1 + theta); right: like exp(-theta lambda / mu)).
    mu_lo, mu_hi = np.log(L.min()) + log_p[0] - 2 * _STEP, np.log(L.max()) + 2 * _STEP
    finite = [t for t in thetas if np.isfinite(t)]
    th_min = min(finite) if finite else np.inf
    n_left = int(np.ceil((30.0 / (1.0 + th_min) + 1.0) / _STEP)) if finite else 0
    n_right = int(np.ceil((np.log(60.0 / min(th_min, 1.0)) + 2.0) / _STEP)) if finite else 0
    n_mu = int(np.ceil((mu_hi - mu_lo) / _STEP)) + 1
    log_lam = mu_lo + _STEP * np.arange(-n_left, n_mu + n_right)
    log_mu = log_lam[n_left:n_left + n_mu]
    H = _poisson_log1p(np.exp(log_lam), c)  # [J, Q]
    d = _STEP * np.arange(-n_left, n_right + 1)  # log(lambda / mu) of the kernel taps
    windows = np.lib.stride_tricks.sliding_window_view(H, d.size, axis=0)[:n_mu]  # [M, Q, taps]
    values = np.empty((len(thetas), log_p.size))
    for i, theta in enumerate(thetas):
        if not np.isfinite(theta):
            G = H[n_left:n_left + n_mu]
        else:
            # density of log(lambda) for lambda ~ Gamma(shape theta, scale mu / theta)
            kernel = np.exp(theta * (d + np.log(theta)) - np.exp(d) * theta - gammaln(theta))
            kernel /= kernel.sum()
            G = windows @ kernel  # [M, Q]
        acc = np.zeros(log_p.size)
        for q in range(L.size):
            acc += w[q] * np.interp(np.log(L[q]) + log_p, log_mu, G[:, q])
        values[i] = acc
    return Log1pTable(thetas=np.array(thetas), log_p=log_p, values=values)


def sample_counts(p: np.ndarray, theta: np.ndarray, library_size: float, library_sd: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw UMI counts for cells with composition ``p`` (``[n, G]``, rows sum to 1).

    Returns ``(counts [n, G] int64, library sizes [n])``. Genes with ``theta = inf`` are Poisson.
    """
    n = p.shape[0]
    lib = library_size * np.exp(library_sd * rng.standard_normal(n))
    mu = p * lib[:, None]
    fin = np.isfinite(theta)
    if fin.all():
        lam = rng.gamma(theta[None, :], mu / theta[None, :])
    elif fin.any():
        lam = mu.copy()
        lam[:, fin] = rng.gamma(theta[None, fin], mu[:, fin] / theta[None, fin])
    else:
        lam = mu
    return rng.poisson(lam), lib


def counts_to_log_csr(counts: np.ndarray, target_sum: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """``log1p(target_sum * k / total)`` as CSR float32, and the totals (UMIs per cell)."""
    total = counts.sum(axis=1)
    M = sp.csr_matrix(counts)
    row = np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))
    with np.errstate(divide="ignore", invalid="ignore"):
        data = np.log1p(M.data * (target_sum / total[row]))
    X = sp.csr_matrix((data.astype(np.float32), M.indices.astype(np.int32), M.indptr.astype(np.int64)),
                      shape=M.shape)
    return X, total
