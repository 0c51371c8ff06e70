"""hwgen: quantized neural networks to bit-exact iCE40/ECP5 hardware."""

from __future__ import annotations

import os

__all__ = ["load"]


def load(path: str | os.PathLike):
    """The validated :class:`~hwgen.spec.Network` of a spec: a TOML file (its NPZ beside it)
    or a QONNX/ONNX model (``.onnx``, read by :func:`hwgen.importers.qonnx.import_onnx`)."""
    if isinstance(path, str | os.PathLike) and os.fspath(path).lower().endswith(".onnx"):
        from .importers.qonnx import import_onnx

        return import_onnx(path).network
    from .spec import load as load_spec

    return load_spec(path)
