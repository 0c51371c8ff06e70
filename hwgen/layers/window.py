"""What the sliding-window kinds share (conv2d, depthwise_conv2d, maxpool): "same" padding,
the stride/padding/pad value checks, the windows of the golden model and the window
generator's geometry (its cycles and line buffer). NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import Where, check_positive, is_int, show
from ..numeric import TensorType
from .tables import toml_value

__all__ = ["same_padding", "Window", "WindowGeometry", "windows"]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of one dimension for "same": ceil(size / stride) outputs, the
    odd pixel of padding after (the TensorFlow convention)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def check_kernel_size(w: object, key: str, where: Where) -> None:
    """Refuses the weights of a sliding-window layer whose kernel is 0×0."""
    if isinstance(w, np.ndarray) and w.ndim >= 3 and w.shape[1] == w.shape[2] == 0:
        raise where.array_error(key, f"shape {w.shape}: a 0×0 kernel, expected k ≥ 1")


def windows(x: np.ndarray, kernel: int, stride: int, pads: tuple[int, int, int, int],
            pad_value: int) -> np.ndarray:
    """Every window of a batch of (H, W, C) tensors: (N, Ho, Wo, k·k·C), each window's
    elements in (ky, kx, c) order, the input padded (top, left, bottom, right) with
    ``pad_value``."""
    top, left, bottom, right = pads
    xp = np.pad(np.asarray(x, dtype=np.int64), ((0, 0), (top, bottom), (left, right), (0, 0)),
                constant_values=pad_value)
    n, hp, wp, c = xp.shape
    ho, wo = (hp - kernel) // stride + 1, (wp - kernel) // stride + 1
    out = np.empty((n, ho, wo, kernel, kernel, c), dtype=np.int64)
    for ky in range(kernel):
        for kx in range(kernel):
            out[:, :, :, ky, kx, :] = xp[:, ky:ky + (ho - 1) * stride + 1:stride,
                                         kx:kx + (wo - 1) * stride + 1:stride, :]
    return out.reshape(n, ho, wo, kernel * kernel * c)


class Window:
    """What the convolution kinds (conv2d, depthwise_conv2d) share: a k×k kernel moved by
    ``stride`` over the input padded by ``padding`` with ``pad_value``. ``padding`` is
    ``"valid"``, ``"same"`` or explicit ``(top, left, bottom, right)`` rows and columns, each
    below the kernel size (PyTorch's and ONNX's ``pads``)."""

    kernel: int
    stride: int
    padding: str | tuple[int, int, int, int]
    pad_value: int

    def logic_features(self, lp) -> dict[str, float]:
        """The kind's own features (the next class in line) and the window generator's: its
        control and the k·k window positions of one beat's input bits it assembles (none
        for a pointwise window, which has no generator)."""
        own = super().logic_features(lp)  # type: ignore[misc]
        if self.geometry(lp.in_type, lp.in_lanes).pointwise:
            return own
        return {**own, "window": 1.0,
                "window_bits": float(self.kernel ** 2 * lp.in_lanes * lp.in_type.bits)}

    def pads(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) padding for an input of ``height`` × ``width``."""
        if isinstance(self.padding, tuple):
            return self.padding
        if self.padding == "valid":
            return 0, 0, 0, 0
        top, bottom = same_padding(height, self.kernel, self.stride)
        left, right = same_padding(width, self.kernel, self.stride)
        return top, left, bottom, right

    def check_window(self, x: TensorType, where: Where) -> tuple[dict, int, int]:
        """Stride, padding, pad value, kernel size and stride fit checked against the
        (H, W, C) input ``x`` (the kernel comes from weights already checked); returns the
        checked fields (stride and pad value as Python ints) and the output's height and
        width."""
        h, w_, _ = x.shape
        stride = check_positive(self.stride, "stride", where)
        k = self.kernel
        padding = self.padding
        if isinstance(padding, list | tuple):
            if len(padding) != 4 or not all(is_int(p) and 0 <= p < k for p in padding):
                raise where.spec_error("padding", f"expected [top, left, bottom, right], "
                                       f"each 0..{k - 1} (below the kernel size), got "
                                       f"{show(padding)}")
            padding = tuple(int(p) for p in padding)
        elif not isinstance(padding, str) or padding not in ("valid", "same"):
            raise where.spec_error("padding", f'expected "valid", "same" or [top, left, '
                                   f'bottom, right], got {show(padding)}')
        lo, hi = x.range
        expected = "-1 or +1 (binary input)" if x.binary else f"an integer in {lo}..{hi}"
        if not is_int(self.pad_value):  # checked even where unused: save() writes it
            raise where.spec_error("pad_value", f"expected {expected}, got "
                                   f"{show(self.pad_value)}")
        pad_value = int(self.pad_value)
        top = left = bottom = right = 0
        if padding == "same":
            top, bottom = same_padding(h, k, stride)
            left, right = same_padding(w_, k, stride)
        elif isinstance(padding, tuple):
            top, left, bottom, right = padding
        padded = any((top, left, bottom, right))
        if padded and (not lo <= pad_value <= hi or (x.binary and pad_value == 0)):
            raise where.spec_error("pad_value", f"expected {expected}, got {pad_value!r}")
        if k > h + top + bottom or k > w_ + left + right:
            raise where.spec_error("kind", f"kernel {k}×{k} is larger than the padded input "
                                   f"{h + top + bottom}×{w_ + left + right}")
        if stride > max(h + top + bottom, w_ + left + right):
            raise where.spec_error("stride", f"{stride} is larger than the padded input "
                                   f"{h + top + bottom}×{w_ + left + right}")
        # rows and columns past the last window are read and dropped, as TensorFlow and
        # PyTorch do (floor((H + pads − k) / s) + 1 outputs)
        return ({"stride": stride, "pad_value": pad_value, "padding": padding},
                (h + top + bottom - k) // stride + 1, (w_ + left + right - k) // stride + 1)

    def window_toml(self) -> list[str]:
        """Its window's TOML lines."""
        padding = list(self.padding) if isinstance(self.padding, tuple) else self.padding
        return [f"kernel = {self.kernel}", f"stride = {self.stride}",
                f"padding = {toml_value(padding)}", f"pad_value = {self.pad_value}"]

    def geometry(self, x: TensorType, lanes: int) -> WindowGeometry:
        """The windows it reads from its input ``x``, ``lanes`` per beat."""
        h, w, c = x.shape
        return WindowGeometry(h, w, c, lanes, self.kernel, self.stride, self.pads(h, w))

    def held(self, lp) -> int:
        """Its line buffer (none for a pointwise window), on top of what its compute unit
        holds (the next class's ``held``)."""
        geometry = self.geometry(lp.in_type, lp.in_lanes)
        line_buffer = 0 if geometry.pointwise else geometry.buffer_words * lp.in_lanes
        return line_buffer + super().held(lp)  # type: ignore[misc]

    def window_values(self, x: np.ndarray) -> np.ndarray:
        """Its windows of a batch of input values (see :func:`windows`)."""
        _, height, width, _ = np.asarray(x).shape
        return windows(x, self.kernel, self.stride, self.pads(height, width), self.pad_value)


@dataclass(frozen=True)
class WindowGeometry:
    """Where the windows of a ``kernel``×``kernel``, ``stride`` scan over a padded
    ``height``×``width``×``channels`` image fall, with ``lanes`` channels per beat."""

    height: int
    width: int
    channels: int
    lanes: int
    kernel: int
    stride: int
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right

    def __post_init__(self):
        if self.channels % self.lanes:
            raise ValueError(f"lanes {self.lanes} do not divide channels {self.channels}")
        top, left, bottom, right = self.pads
        if self.kernel > self.height + top + bottom or self.kernel > self.width + left + right:
            raise ValueError("kernel larger than the padded image")

    @property
    def chunks(self) -> int:
        """Beats per pixel."""
        return self.channels // self.lanes

    @property
    def pointwise(self) -> bool:
        """A 1×1 window with stride 1 and no padding: every input beat is a window beat, in
        order, so no line buffer is needed (the unit reads the input stream itself)."""
        return self.kernel == 1 and self.stride == 1 and not any(self.pads)

    @property
    def out_height(self) -> int:
        top, _, bottom, _ = self.pads
        return (self.height + top + bottom - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        _, left, _, right = self.pads
        return (self.width + left + right - self.kernel) // self.stride + 1

    @property
    def in_beats(self) -> int:
        return self.height * self.width * self.chunks

    @property
    def out_beats(self) -> int:
        """Beats per frame: every output pixel's k·k·chunks window beats."""
        return self.out_height * self.out_width * self.kernel ** 2 * self.chunks

    @property
    def cycles(self) -> int:
        """Cycles per frame with input always valid and output always ready: the generator
        takes one input beat and emits one window beat per cycle, each side on its own."""
        return max(self.in_beats, self.out_beats)

    @property
    def rows(self) -> int:
        """Image rows the line buffer holds: the window's rows plus the next ``stride`` rows,
        and across a frame boundary the current frame's last rows plus the next frame's first
        window, so neither side waits for the other in steady state."""
        top = self.pads[0]
        last_top = max(0, (self.out_height - 1) * self.stride - top)
        boundary = (self.height - last_top) + min(self.height, self.kernel - top)
        return max(self.kernel + self.stride, boundary)

    @property
    def buffer_words(self) -> int:
        """Words of a sliding-window generator's line buffer (a convolution's
        :class:`~hwgen.rtl.window.WindowedUnit` builds none when :attr:`pointwise`)."""
        return self.rows * self.width * self.chunks
