"""Bit allocation: per-layer weight and activation widths chosen against a board's budgets
(``hwgen allocate``; docs/allocation.md)."""

from .proxies import SIGMA_A, SIGMA_W, layer_qe_terms, qe_score, sigma_hat

__all__ = ["sigma_hat", "qe_score", "layer_qe_terms", "SIGMA_A", "SIGMA_W"]
