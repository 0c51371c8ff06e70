"""What the weight memories hold, as integers: the folded unit's weight words, DSP row
packing, and the SPRAM weight image (docs/protocol.md) that the board loads over the UART with
LOAD frames after configuration (the UP5K's SB_SPRAM256KA cannot be initialized by the
bitstream). NumPy only: the host (:mod:`hwgen.runtime`) and the RTL
(:mod:`hwgen.rtl.weights`) both read it.
"""

from __future__ import annotations

import math

import numpy as np

from .layers import WeightedLayer
from .numeric import encode
from .plan import NetworkPlan, plan
from .spec import Network

__all__ = ["weight_words", "pack_rows", "SPRAM_DEPTH", "SPRAM_WIDTH", "spram_shape",
           "spram_layers", "spram_image"]

#: Words and bits of one SB_SPRAM256KA.
SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16


def weight_words(weights: np.ndarray, weight_bits: int, pe: int, simd: int) -> list[int]:
    """The (out × in) weight matrix as matrix-vector-unit words, address nf·SF + sf; output
    channel p of the group, lane k at bits (p·SIMD + k)·weight_bits."""
    codes = encode(weights, weight_bits, True)
    out, inp = weights.shape
    words = []
    for nf in range(out // pe):
        for sf in range(inp // simd):
            block = codes[nf * pe:(nf + 1) * pe, sf * simd:(sf + 1) * simd].reshape(-1)
            word = 0
            for k, code in enumerate(block.tolist()):
                word |= int(code) << (k * weight_bits)
            words.append(word)
    return words


def pack_rows(matrix: np.ndarray, pack: int, field: int) -> np.ndarray:
    """Every ``pack`` consecutive rows as one: row ``r`` of the result is
    ``Σ_t matrix[r·pack + t]·2**(t·field)``, the weights of ``pack`` output channels that one
    DSP multiplies by the same input (:func:`hwgen.plan.dsp_packing`)."""
    rows, cols = matrix.shape
    grouped = np.asarray(matrix, dtype=np.int64).reshape(rows // pack, pack, cols)
    return sum(grouped[:, t, :] << (t * field) for t in range(pack))


def spram_shape(width: int, depth: int) -> tuple[int, int]:
    """(columns, banks) of SPRAMs holding ``depth`` words of ``width`` bits: one SPRAM per
    16-bit column and per 16 K words."""
    return math.ceil(width / SPRAM_WIDTH), math.ceil(depth / SPRAM_DEPTH)


def spram_layers(network: Network,
                 net_plan: NetworkPlan | None = None) -> list[tuple[str, int, list[int]]]:
    """Per layer with ``weight_memory = "spram"``, in network order: (name, word width,
    words), folded as ``net_plan`` (default: :func:`~hwgen.plan.plan` of the network; the
    image does not depend on the DSP budget) folds them."""
    net_plan = net_plan or plan(network)
    result = []
    for layer, lp in zip(network.layers, net_plan.layers, strict=True):
        if isinstance(layer, WeightedLayer) and layer.weight_memory == "spram":
            # one row per output channel; depthwise: one filter per channel, SIMD 1
            result.append((layer.name, lp.pe * lp.simd * layer.weight_bits,
                           weight_words(layer.matrix, layer.weight_bits, lp.pe, lp.simd)))
    return result


def spram_image(network: Network, net_plan: NetworkPlan | None = None) -> bytes:
    """The bytes LOAD writes: per SPRAM layer, per word in address order, its 16-bit columns
    from the lowest up, each little-endian. Empty when no layer keeps weights in SPRAM."""
    out = bytearray()
    for _, width, words in spram_layers(network, net_plan):
        columns, _ = spram_shape(width, len(words))
        for word in words:
            for c in range(columns):
                out += ((word >> (c * SPRAM_WIDTH)) & 0xFFFF).to_bytes(2, "little")
    return bytes(out)
