"""Trained models from other formats → :class:`hwgen.spec.Network` (today QONNX/ONNX:
:mod:`hwgen.importers.qonnx`)."""
