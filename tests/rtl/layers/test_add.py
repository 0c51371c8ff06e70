# amaranth: UnusedElaboratable=no
"""AddUnit's argument checks; the unit runs bit-exact in tests/rtl/test_network.py (residual
blocks)."""

import re

import numpy as np
import pytest

from hwgen.numeric import TensorType
from hwgen.rtl.layers.add import AddUnit

A = TensorType((2, 2, 4), 4, True)


@pytest.mark.parametrize("make, message", [
    (lambda: AddUnit(A, A, A, lanes=0), "lanes must be a positive integer, not 0"),
    (lambda: AddUnit(A, TensorType((2, 4, 2), 4, True), A, lanes=2),
     "b_type shape (2, 4, 2) differs from a_type shape (2, 2, 4)"),
    (lambda: AddUnit(A, A, TensorType((16,), 5, True), lanes=2),
     "out_type shape (16,) differs from a_type shape (2, 2, 4)"),
    (lambda: AddUnit(A, A, A, lanes=3), "lanes 3 does not divide the 4 channels"),
    (lambda: AddUnit(A, A, TensorType((2, 2, 4), 1, False), lanes=2,
                     thresholds=np.zeros((3, 1), int)),
     "thresholds have 3 rows, not one per channel (4)"),
])
def test_constructor_rejects_bad_arguments(make, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make()
