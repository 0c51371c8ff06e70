"""Stage 4 of a folded unit, the output stage: a group's accumulator terms ``q`` (one per
lane) become the output lanes by thresholds (parallel compares, or a binary search one
compare a step), requantize (a parallel product, or shift-and-add one factor bit a step) or
the raw accumulator; and the lane ROMs its tables live in."""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, Value, signed

from ..layers import Mac
from ..layers.weighted import WeightMatrix
from ..numeric import TensorType
from .arith import dot_lut, sum_tree
from .datapath import Datapath, signed_shape
from .memory import rom

__all__ = ["OutputStage", "lane_rom", "MAX_WORD_BITS"]


def saturate(value: Value, bits: int, is_signed: bool) -> Value:
    """``value`` (signed) clamped to the ``bits``-bit unsigned or signed range, by testing the
    bits above the range (an OR of a few LUTs, not two full-width comparators)."""
    value = Value.cast(value)
    sign = value[-1]
    if is_signed:
        upper = value[bits - 1:]
        fits = ~upper.any() | upper.all()
        limit = Mux(sign, 1 << (bits - 1), (1 << (bits - 1)) - 1)
        return Mux(fits, value[:bits], limit)
    above = value[bits:-1].any() if len(value) > bits + 1 else Const(0, 1)
    return Mux(sign, 0, Mux(above, (1 << bits) - 1, value[:bits]))



#: Amaranth numbers the bits of one cell's value with 16 bits: no memory word may be wider.
MAX_WORD_BITS = 1 << 16


def lane_rom(m: Module, name: str, lane_bits: int, lanes: int, words: list[int],
             addr: Value, capture: Value | None = None) -> list[Value]:
    """The lanes of the word at ``addr`` of a ROM holding ``words`` (each ``lanes`` lanes of
    ``lane_bits``, lane 0 lowest), one cycle after ``addr``; with ``capture``, held in a
    register written in the cycles ``capture`` is high (the word addressed the cycle before)
    and read from it after. One memory ``name`` when the word fits :data:`MAX_WORD_BITS`,
    else whole lanes split over ``name_0``, ``name_1``, … of at most that width each."""
    if lane_bits > MAX_WORD_BITS:
        raise ValueError(f"{name}: one lane of {lane_bits} bits is wider than a memory word "
                         f"can be ({MAX_WORD_BITS})")
    per = min(lanes, MAX_WORD_BITS // lane_bits)
    parts = []
    for k, first in enumerate(range(0, lanes, per)):
        count = min(per, lanes - first)
        width = count * lane_bits
        mask = (1 << width) - 1
        memory = rom(width, len(words), [(w >> (first * lane_bits)) & mask for w in words])
        part_name = name if per >= lanes else f"{name}_{k}"
        m.submodules[part_name] = memory
        port = memory.read_port()
        m.d.comb += port.addr.eq(addr)
        data = port.data
        if capture is not None:
            data = Signal(width, name=f"{part_name}_held", reset_less=True)
            with m.If(capture):
                m.d.sync += data.eq(port.data)
        parts += [data[i * lane_bits:(i + 1) * lane_bits] for i in range(count)]
    return parts


class OutputStage:
    """Builds the output stage of a folded unit into its module.

    The group's terms sit in registers from the cycle ``s3_valid`` marks until the next
    group's last step, at least SF cycles. A parallel stage (``steps`` 0) has its lanes one
    cycle after ``s3_valid`` (``out_valid`` is that cycle); a serial one (``steps`` > 0: the
    requantize factor's bits, or n compares for n-bit thresholds) works ``steps`` cycles and
    its ``out_valid`` is the cycle after the last. Tables (thresholds, factors, offsets) are
    ROMs of one word per output group, read with the group's index; with registered reads
    (:mod:`hwgen.rtl.memory`) each is addressed a cycle earlier and held in a register, so
    no ROM output reaches logic directly and the timing is the same.

    Parameters
    ----------
    datapath : Datapath
        The unit's datapath (offsets, ``beta``, ``q`` range, requantize constants).
    weights : WeightMatrix
        The output quantization (thresholds or requantize, or neither).
    out_type : TensorType
        The unit's output vector type (``nf·pe`` channels).
    pe, nf : int
        Lanes per group and groups per vector.
    steps : int
        Cycles of a serial stage, 0 for the parallel one.
    mac : Mac
        ``Mac.DSP`` puts a parallel requantize product on a DSP multiplier, else logic.
    registered_reads : bool
        Register every ROM's read data before any logic (on ECP5).
    """

    def __init__(self, datapath: Datapath, weights: WeightMatrix, out_type: TensorType, *,
                 pe: int, nf: int, steps: int, mac: Mac, registered_reads: bool = False):
        self.datapath, self.weights, self.out_type = datapath, weights, out_type
        self.pe, self.nf, self.steps, self.mac = pe, nf, steps, mac
        self.registered_reads = registered_reads

    def build(self, m: Module, q_values: list, q_shape, *, mid_nf, s2_start, s2_nf, s3_nf,
              s3_valid) -> tuple[list, Value]:
        """The output lanes of the group whose terms ``q_values`` (of ``q_shape``) are ready
        the cycle ``s3_valid`` is high (its index ``s3_nf``); ``s2_start`` is high and
        ``s2_nf`` the group's index the cycle before, ``mid_nf`` the one before that. Returns
        the lanes and the signal marking the cycle they are valid."""
        dp, pe, nf_count = self.datapath, self.pe, self.nf
        s4_valid = Signal()
        m.d.sync += s4_valid.eq(s3_valid)
        steps = self.steps
        out_valid = s4_valid
        if steps:
            step, active, out_valid = self._serial_control(m, s3_valid, steps)
            out_nf = Signal(range(nf_count))  # the group in the serial stage
            with m.If(s3_valid):
                m.d.sync += out_nf.eq(s3_nf)
            group_nf = Mux(s3_valid, s3_nf, out_nf)

        def table(name: str, bits: int, values, needed_from: str) -> list[Value]:
            """Per lane, the group's row of ``values`` (one value or several per channel,
            each packed ``bits`` wide): valid in the cycle ``s3_valid`` is high
            (``needed_from`` "s3"), or from the cycle after it until the group's lanes are
            out ("s4")."""
            words = self.group_words(values, bits)
            lane_bits = bits * (np.asarray(values).size // self.weights.out_features)
            if self.registered_reads:
                addr, capture = (mid_nf, s2_start) if needed_from == "s3" else (s2_nf, s3_valid)
                return lane_rom(m, name, lane_bits, pe, words, addr, capture)
            addr = s2_nf if needed_from == "s3" else (out_nf if steps else s3_nf)
            return lane_rom(m, name, lane_bits, pe, words, addr)

        rq = self.weights.requantize
        out_bits = self.out_type.bits
        lanes_out = []
        if rq is not None:
            factors, constants, shift = dp.requantize_constants(rq)
            fbits = signed_shape(min(factors), max(factors)).width
            cbits = signed_shape(min(constants), max(constants)).width
            f_data = table("factors", fbits, np.array(factors, dtype=object), "s3")
            c_data = table("constants", cbits, np.array(constants, dtype=object), "s4")
            for p in range(pe):
                factor = f_data[p].as_signed()
                if steps:  # steps == fbits, checked by the constructor
                    product = self._serial_product(m, s3_valid, active, step, q_values[p],
                                                   factor, p)
                else:
                    value = q_values[p] * factor if self.mac == Mac.DSP \
                        else dot_lut(m, [(q_values[p], factor)], f"rq{p}")
                    product = Signal(value.shape(), name=f"prod{p}")
                    m.d.sync += product.eq(value)
                scaled = Signal(signed(max(len(product), cbits) + 1), name=f"scaled{p}")
                m.d.comb += scaled.eq((product + c_data[p].as_signed()) >> shift)
                lanes_out.append(saturate(scaled, out_bits, rq.signed))
        elif self.weights.thresholds is not None and steps:
            tq = dp.q_thresholds(self.weights.thresholds)
            for p in range(pe):
                lanes_out.append(self._threshold_search(
                    m, s3_valid, active, step, q_values[p], tq[p::pe], p,
                    group_nf=group_nf, early_nf=(s2_nf, mid_nf), s2_start=s2_start))
        elif self.weights.thresholds is not None:
            q = [Signal(q_shape, name=f"q{p}") for p in range(pe)]
            m.d.sync += [q[p].eq(q_values[p]) for p in range(pe)]
            tq = dp.q_thresholds(self.weights.thresholds)
            count = tq.shape[1]
            qbits = q_shape.width
            t_data = table("thresholds", qbits, tq, "s4")
            for p in range(pe):
                hits = [q[p] >= t_data[p][t * qbits:(t + 1) * qbits].as_signed()
                        for t in range(count)]
                lanes_out.append(hits[0] if count == 1 else sum_tree(hits))
        else:
            q = [Signal(q_shape, name=f"q{p}") for p in range(pe)]
            m.d.sync += [q[p].eq(q_values[p]) for p in range(pe)]
            off_lo, off_hi = int(dp.offset.min()), int(dp.offset.max())
            obits = signed_shape(off_lo, off_hi).width
            o_data = table("offsets", obits, dp.offset, "s4")
            for p in range(pe):
                off = o_data[p].as_signed()
                lanes_out.append((q[p] << (dp.beta - 1)) + off)  # beta is 1 or 2

        return lanes_out, out_valid

    def group_words(self, values: np.ndarray, bits: int) -> list[int]:
        """Per output group nf, the ``values[o, ...]`` of its channels packed ``bits`` wide."""
        per_channel = np.asarray(values).reshape(self.weights.out_features, -1)
        mask = (1 << bits) - 1
        words = []
        for nf in range(self.nf):
            word = 0
            for k, value in enumerate(per_channel[nf * self.pe:(nf + 1) * self.pe]
                                      .reshape(-1).tolist()):
                word |= (int(value) & mask) << (k * bits)  # Python ints: any width
            words.append(word)
        return words

    def _serial_control(self, m: Module, start, steps: int):
        """The step counter of a serial output stage: ``(step, active, done)``. ``step`` is
        the step (0 .. steps − 1) computed this cycle, step 0 in the cycle ``start`` is high;
        ``active`` is high while a step is computed, ``done`` the cycle after the last."""
        count = Signal(range(steps), name="out_step")
        busy, done = Signal(name="out_busy"), Signal(name="out_done")
        step = Mux(start, 0, count)
        active = start | busy
        last = step == steps - 1
        m.d.sync += done.eq(active & last)
        with m.If(active):
            m.d.sync += [count.eq(Mux(last, 0, step + 1)), busy.eq(~last)]
        return step, active, done

    def _serial_product(self, m: Module, start, active, step, q, factor, p: int) -> Value:
        """``q·factor`` by shift-and-add, one factor bit per step from the lowest, the sign
        bit's weight subtracted: a register ``hi:lo`` starts as ``0:factor``; each step adds
        ``±q`` to ``hi`` if ``lo``'s low bit is set and shifts the pair right by one. Valid
        the cycle after the last step; ``q`` must hold still until then."""
        q = Value.cast(q)
        fbits = len(factor)
        hi = Signal(signed(len(q) + 1), name=f"rq_hi{p}")  # |hi| ≤ |q| after every step
        lo = Signal(fbits, name=f"rq_lo{p}")
        src_hi, src_lo = Mux(start, 0, hi), Mux(start, factor.as_unsigned(), lo)
        total = src_hi + Mux(src_lo[0], Mux(step == fbits - 1, -q, q), 0)
        with m.If(active):
            m.d.sync += [hi.eq(total >> 1), lo.eq(Cat(src_lo[1:fbits], total[0]))]
        return Cat(lo, hi).as_signed()

    def _threshold_search(self, m: Module, start, active, step, q, thresholds: np.ndarray,
                          p: int, *, group_nf, early_nf, s2_start) -> Value:
        """How many of its group's thresholds ``q`` reaches, by binary search: one compare a
        step, highest result bit first. Valid the cycle after the last step; ``q`` must hold
        still.

        No compare reaches a memory address: each read fetches every threshold that step
        ``k`` may compare with, given all bits but the last ``a`` decided before it (``a`` =
        1, or 2 with registered reads, whose data come a cycle later), and those ``a`` bits
        (registers by step ``k``) pick one of the word's ``2**a`` slots. The word for step
        ``k ≥ a`` is at node ``2**(k−1) + P`` (``P``: the bits before those ``a``), read during
        step ``k − a`` from the node read before it (``node' = 2·node + b_{k−a−1}``); words
        0 .. a − 1 serve steps 0 .. a − 1 and are read the ``a − k`` cycles before ``start``
        (addressed with ``early_nf[a − k − 1]``: the group's index one and two cycles before
        ``start``; ``s2_start`` marks the cycle before it). Group ``g``'s words are at
        ``g·2**(n−1) + node``."""
        n = self.out_type.bits
        ahead = 2 if self.registered_reads else 1
        slots = 1 << ahead
        count = thresholds.shape[1]
        tbits = signed_shape(int(thresholds.min()), int(thresholds.max())).width
        table = np.zeros((self.nf, 1 << n), dtype=np.int64)
        table[:, :count] = thresholds
        mask = (1 << tbits) - 1
        words = []
        for group in table.tolist():
            for node in range(1 << (n - 1)):
                k = node if node < ahead else node.bit_length()  # the step it serves
                known = max(k - ahead, 0)  # bits decided before the slot's bits
                prefix = node - (1 << (k - 1)) if node >= ahead else 0
                word = 0
                if prefix < 1 << known:
                    for slot in range(slots):
                        index = (prefix << (n - known)) | ((1 << (n - 1 - k)) - 1)
                        for t in range(ahead):  # slot bit ahead−1−t is b_{k−ahead+t}
                            i = k - ahead + t
                            if i >= 0:
                                index |= ((slot >> (ahead - 1 - t)) & 1) << (n - 1 - i)
                        word |= (group[index] & mask) << (slot * tbits)
                words.append(word)
        table = rom(slots * tbits, self.nf << (n - 1), words)
        m.submodules[f"thresholds{p}"] = table
        t_r = table.read_port()
        data = t_r.data
        if self.registered_reads:
            data = Signal(len(t_r.data), name=f"thresholds{p}_held", reset_less=True)
            m.d.sync += data.eq(t_r.data)
        found = Signal(n, name=f"th_count{p}")
        recent = Signal(ahead, name=f"th_recent{p}")  # the last bits decided, newest lowest
        node = Signal(n - 1, name=f"th_node{p}")  # the node read last
        bit = Const(1 << (n - 1), n) >> step  # the result bit this step decides
        threshold = data.word_select(recent, tbits).as_signed()
        reached = Value.cast(q) >= threshold
        with m.If(active):
            m.d.sync += [found.eq(Mux(start, 0, found) | Mux(reached, bit, 0)),
                         recent.eq(Cat(reached, recent[:-1]))]
        next_node = Mux(start, 1 << (ahead - 1), Cat(recent[0], node)[:n - 1])
        with m.If(active):
            m.d.sync += node.eq(next_node)
        first_words = Cat(Const(0, n - 1), early_nf[ahead - 1])
        if ahead == 2:
            first_words = Mux(s2_start, Cat(Const(1, n - 1), early_nf[0]), first_words)
        m.d.comb += t_r.addr.eq(Mux(active & (step < n - ahead), Cat(next_node, group_nf),
                                    first_words))
        return found
