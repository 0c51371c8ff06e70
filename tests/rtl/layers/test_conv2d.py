# amaranth: UnusedElaboratable=no
"""ConvUnit's and WindowedUnit's argument checks; conv2d layers run bit-exact and cycle-exact
in tests/rtl/test_network.py."""

import re

import numpy as np
import pytest

from hwgen.numeric import TensorType
from hwgen.rtl.layers.conv2d import ConvUnit
from hwgen.rtl.layers.dense import MatrixVectorUnit
from hwgen.rtl.window import WindowedUnit
from hwgen.spec import Input
from tests.helpers import chain


def _conv():
    net, _ = chain(np.random.default_rng(0), Input((5, 5, 4), 4),
                   [dict(kind="conv2d", out=4, kernel=3, weight_bits=2, out_bits=2, pe=2,
                         simd=2)], count=1)
    return net.layers[0], net.types[0], net.types[1]


def test_conv_unit_rejects_bad_arguments():
    layer, x, y = _conv()
    cases = [
        (dict(simd=0), ValueError, "simd must be a positive integer, not 0"),
        (dict(simd=3), ValueError, "simd 3 does not divide the 4 input channels"),
        (dict(pe=0), ValueError, "pe must be a positive integer, not 0"),
        (dict(pe=3), ValueError, "pe 3 does not divide the 4 output channels"),
        (dict(mac="auto"), ValueError,
         "mac must be one of 'xnor', 'addsub', 'lut', 'dsp', not 'auto'"),
    ]
    for changes, error, message in cases:
        kwargs = dict(pe=2, simd=2) | changes
        with pytest.raises(error, match=f"^{re.escape(message)}$"):
            ConvUnit(layer.weight_matrix(), x, y, kernel=3, **kwargs)
    with pytest.raises(ValueError, match=re.escape("in_type must be an (H, W, C) image, not "
                                                   "shape (100,)")):
        ConvUnit(layer.weight_matrix(), TensorType((100,), 4, False), y, kernel=3, pe=2, simd=2)


def test_windowed_unit_rejects_bad_arguments():
    layer, x, y = _conv()
    net, _ = chain(np.random.default_rng(0), Input((36,), 4),
                   [dict(out=4, weight_bits=2, out_bits=2, pe=2, simd=2)], count=1)
    unit = MatrixVectorUnit(net.layers[0].weight_matrix(), net.types[0], net.types[1], pe=2,
                            simd=2)
    cases = [
        (dict(lanes=0), ValueError, "lanes must be a positive integer, not 0"),
        (dict(out_lanes=-1), ValueError, "out_lanes must be a positive integer, not -1"),
        (dict(out_type=TensorType((36,), 2, False)), ValueError,
         "out_type must be an (H, W, C) image, not shape (36,)"),
        (dict(unit="mvu"), TypeError, "unit must be a wiring.Component, not 'mvu'"),
    ]
    for changes, error, message in cases:
        kwargs = dict(in_type=x, out_type=y, unit=unit, lanes=2, out_lanes=2) | changes
        with pytest.raises(error, match=f"^{re.escape(message)}$"):
            WindowedUnit(kernel=3, stride=1, **kwargs)


def test_a_pointwise_convolution_has_no_window_generator():
    """1×1, stride 1, no padding: the unit reads the input stream itself (no line buffer);
    bit-exact under stalls in tests/rtl/test_network.py ("cnn"'s second convolution)."""
    from amaranth.hdl import Fragment

    from hwgen.layers.weighted import WeightedLayer
    from hwgen.plan import plan

    for kernel, stride, padding, pointwise in [(1, 1, "valid", True), (1, 2, "valid", False),
                                               (3, 1, "same", False)]:
        net, _ = chain(np.random.default_rng(0), Input((5, 5, 4), 4),
                       [dict(kind="conv2d", out=4, kernel=kernel, stride=stride,
                             padding=padding, weight_bits=2, out_bits=2, pe=2, simd=2)],
                       count=1)
        layer, x, y = net.layers[0], net.types[0], net.types[1]
        lp = plan(net).layers[0]
        geometry = layer.geometry(x, 2)
        assert geometry.pointwise == pointwise
        unit_holds = WeightedLayer.held(layer, lp)  # the matrix-vector unit's own
        assert layer.held(lp) == (0 if pointwise else geometry.buffer_words * 2) + unit_holds
        assert ("window" in layer.logic_features(lp)) != pointwise
        unit = ConvUnit(layer.weight_matrix(), x, y, kernel=kernel, stride=stride,
                        pads=layer.pads(5, 5), pe=2, simd=2)
        names = [name for _, name, _ in Fragment.get(unit, None).subfragments]
        assert ("window" in names) != pointwise and "mvu" in names
