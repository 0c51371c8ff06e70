"""The QE-Score and its σ̂: the published table, a Monte Carlo check, hand-worked scores."""

import math

import numpy as np
import pytest

from hwgen.allocation import SIGMA_A, layer_qe_terms, qe_score, sigma_hat
from hwgen.spec import Input
from tests.helpers import chain

#: The QE-Score paper's σ̂ for σ = 4 at 2, 3 and 4 bits.
PUBLISHED_SIGMA_HAT_4 = {2: 1.7388, 3: 2.8904, 4: 3.8505}


@pytest.mark.parametrize("bits", list(PUBLISHED_SIGMA_HAT_4))
def test_sigma_hat_reproduces_the_published_table(bits):
    assert round(sigma_hat(4.0, bits), 4) == PUBLISHED_SIGMA_HAT_4[bits]


@pytest.mark.parametrize("sigma, bits", [(4.0, 2), (5.0, 3), (4.0, 6), (2.5, 4)])
def test_sigma_hat_is_the_std_of_rounded_clipped_gaussians(sigma, bits):
    top = 2 ** (bits - 1)
    samples = np.clip(np.round(np.random.default_rng(bits).normal(0, sigma, 2_000_000)),
                      -top, top)
    assert sigma_hat(sigma, bits) == pytest.approx(samples.std(), rel=2e-3)


def test_one_bit_is_a_sign_and_wide_words_keep_the_gaussian():
    assert sigma_hat(4.0, 1) == 1.0
    # 16 bits clip nothing: the rounding's 1/12 adds to the variance
    assert sigma_hat(4.0, 16) == pytest.approx(math.sqrt(16 + 1 / 12), rel=1e-4)
    with pytest.raises(ValueError, match="at least 1"):
        sigma_hat(4.0, 0)


def test_qe_score_of_a_small_network_worked_by_hand():
    rng = np.random.default_rng(0)
    # binary input (σ̂ = 1) into a 2-bit dense layer of 64 inputs, binary outputs into a
    # 4-bit dense layer of 32: both σ̂ of the weights come from the published table
    net, _ = chain(rng, Input((64,), 1), [
        dict(out=32, weight_bits=2, out_bits=1, pe=1, simd=1),
        dict(out=10, weight_bits=4, out_bits=None, pe=1, simd=1)], argmax=True, name="qe")
    expected = [math.log(64 * 1.0 * 1.7388 ** 2 / SIGMA_A ** 2),
                math.log(32 * 1.0 * 3.8505 ** 2 / SIGMA_A ** 2)]
    terms = layer_qe_terms(net)
    assert [name for name, _ in terms] == [layer.name for layer in net.layers[:2]]
    assert [t for _, t in terms] == pytest.approx(expected, abs=1e-4)
    assert qe_score(net) == pytest.approx(sum(expected) + math.log(SIGMA_A ** 2), abs=1e-4)


def test_qe_score_ranks_wider_weights_higher():
    rng = np.random.default_rng(1)
    scores = []
    for bits in (1, 2, 4, 8):
        net, _ = chain(rng, Input((16,), 4), [dict(out=8, weight_bits=bits, out_bits=None, pe=1,
                                                      simd=1)],
                       argmax=True)
        scores.append(qe_score(net))
    assert scores == sorted(scores) and len(set(scores)) == 4
