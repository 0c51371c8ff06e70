"""The folded pipeline of the layers with weights (dense, conv2d, depthwise_conv2d):
:class:`FoldedUnit`, from the input double buffer through the steps and the accumulators to
the output stage (:mod:`hwgen.rtl.output_stage`) and the output FIFO. The kinds' units
(:mod:`hwgen.rtl.layers.dense`, :mod:`hwgen.rtl.layers.depthwise_conv2d`) derive from it
and choose the folding, the buffer words each step reads and the partial sums."""

from __future__ import annotations

import math
import numbers

from amaranth import Array, Cat, Const, EnableInserter, Module, Mux, Signal, Value, unsigned
from amaranth.lib import fifo, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..layers import Mac
from ..layers.base import folded_depth
from ..layers.weighted import WeightMatrix, packed_operand_bits
from ..numeric import TensorType
from ..weight_image import pack_rows, spram_shape, weight_words
from .arith import Stage, registered, sum_tree
from .datapath import Datapath, Mode, check_mac, check_weights, int_shape, signed_shape
from .memory import COLLISION_FREE, bank_depth, block_ram, rom
from .output_stage import OutputStage
from .stream import check_positive, lanes_signature, output_buffer
from .weights import LOAD_PORTS, SpramWeights

__all__ = ["FoldedUnit"]


class FoldedUnit(wiring.Component):
    """The folded pipeline of a layer with weights: per input vector, ``nf`` output groups of
    ``pe`` channels, each computed in ``sf`` steps.

    An input vector arrives as ``vector_words`` beats of ``lanes`` elements into one of two
    buffers; computation on a complete buffer starts the next cycle while the other buffer
    fills. Each step reads one buffer word (:meth:`_read_index`) and one weight word of
    ``pe·w_lanes`` weights and adds one partial sum per channel (:meth:`_partials`); a group's
    sums then go through the output stage (thresholds, requantize or the raw accumulator, see
    :class:`Datapath`) into the output FIFO. The output stage is parallel, or serial when
    its work fits in the ``sf`` cycles between groups (:func:`~hwgen.plan.output_steps`): one
    shift-and-add multiplier per lane for requantize, one comparator per lane doing a binary
    search of the thresholds. A vector takes ``nf·sf`` cycles, and a group leaves
    :attr:`depth` cycles after its last step. ``i_stream.ready`` and the step issue are
    registers (each takes its condition on the state the other registers are about to take), so
    neither the input's producer nor the memories see logic behind them; output backpressure
    stalls the computation through a credit counter, never combinationally.

    Fully unrolled (``nf = sf = 1``, the weights in ROM and a parallel output stage:
    :attr:`unrolled`), a vector is one beat and the weights are constants of the datapath (no
    weight memory). The beat waits in
    an input register, the pipeline freezes in place while its last stage waits for room in a
    two-entry output buffer, and there is no double buffer, credit counter or output FIFO.
    The timing is the folded one (a vector per cycle, the same latency), and
    ``i_stream.ready`` still depends on registered state only.

    Subclasses (:class:`~hwgen.rtl.layers.dense.MatrixVectorUnit`,
    :class:`~hwgen.rtl.layers.depthwise_conv2d.VectorVectorUnit`)
    choose the folding and provide :meth:`_read_index` and :meth:`_partials`.

    With ``spram`` the weights live in a
    :class:`~hwgen.rtl.weights.SpramWeights` store, loaded through the ``load_*`` ports
    (:data:`~hwgen.rtl.weights.LOAD_PORTS`) before the first input.

    Parameters
    ----------
    weights : WeightMatrix
        Weights (one row per output channel), bias and output quantization.
    in_type, out_type : TensorType
        The unit's input vector (``vector_words·lanes`` elements) and output vector
        (``nf·pe`` channels) types.
    pe : int
        Output channels per group and per output beat.
    lanes : int
        Elements per input beat (and per buffer word).
    w_lanes : int
        Weights per output channel and step.
    nf, sf : int
        Output groups per vector and steps per group.
    vector_words : int
        Input beats per vector.
    mac : Mac
        How products are built (the plan's :attr:`~hwgen.layers.base.LayerPlan.mac`, or its
        string); ``Mac.DSP`` puts multi-bit products on DSP multipliers, the others keep them
        in logic.
    shared_input : bool
        Whether all channels of a group read the same input elements (a matrix) or each its
        own lane (per-channel filters).
    dsp_pack : int
        Output channels whose weights share one DSP operand (divides ``pe``); used only for
        multi-bit products on DSPs (the plan's ``dsp_pack``).
    output_steps : int
        Cycles per group of a serial output stage (at most ``sf``), 0 for the parallel one
        (the plan's ``output_steps``).
    spram : bool
        Weights in SPRAM, loaded through the ``load_*`` ports, instead of a ROM.

    Members
    -------
    i_stream : In(stream.Signature(ArrayLayout(in element, lanes)))
    o_stream : Out(stream.Signature(ArrayLayout(out element, pe)))
    load_valid, load_first, load_data : In
        Only with SPRAM weights (see above).
    """

    def __init__(self, weights: WeightMatrix, in_type: TensorType, out_type: TensorType, *,
                 pe: int, lanes: int, w_lanes: int, nf: int, sf: int, vector_words: int,
                 mac: Mac | str, shared_input: bool, dsp_pack: int = 1, output_steps: int = 0,
                 spram: bool = False):
        check_weights(weights)
        for name, value in (("pe", pe), ("lanes", lanes), ("w_lanes", w_lanes), ("nf", nf),
                            ("sf", sf), ("vector_words", vector_words), ("dsp_pack", dsp_pack)):
            check_positive(name, value)
        mac = check_mac(mac)
        if not isinstance(output_steps, numbers.Integral) or isinstance(output_steps, bool) \
                or output_steps < 0:
            raise ValueError(f"output_steps must be a non-negative integer, not "
                             f"{output_steps!r}")
        if output_steps > sf:
            raise ValueError(f"output_steps {output_steps} exceed the {sf} steps of a group")
        if vector_words * lanes != in_type.size:
            raise ValueError(f"vector_words·lanes ({vector_words}·{lanes}) is not the "
                             f"{in_type.size} input elements")
        if nf * pe != out_type.size:
            raise ValueError(f"nf·pe ({nf}·{pe}) is not the {out_type.size} output channels")
        if pe % dsp_pack:
            raise ValueError(f"dsp_pack {dsp_pack} does not divide pe {pe}")
        self.datapath = Datapath(weights, in_type, shared_input=shared_input)
        if output_steps:
            serial = self._serial_steps(weights, out_type)
            if output_steps != serial:
                raise ValueError(f"output_steps {output_steps}: " + (
                    f"the serial output stage takes {serial} steps" if serial else
                    "only requantize or multi-bit thresholds have a serial output stage"))
        self.weights, self.in_type, self.out_type = weights, in_type, out_type
        self.pe, self.lanes, self.w_lanes = pe, lanes, w_lanes
        self.nf, self.sf, self.vector_words = nf, sf, vector_words
        #: How multi-bit products are built (ignored by the xnor and add/sub paths).
        self.mac = mac
        #: Output channels whose weights share one DSP operand.
        self.dsp_pack = dsp_pack if self.datapath.mode == Mode.MUL and mac == Mac.DSP else 1
        #: Cycles per group of the serial output stage, 0 for the parallel one (the plan's
        #: :attr:`~hwgen.layers.base.LayerPlan.output_steps`).
        self.output_steps = output_steps
        #: Cycles from a group's last step to the group at the output.
        self.depth = folded_depth(self.output_steps)
        #: Output FIFO entries: enough credit that outputs never throttle an unstalled unit.
        self.fifo_depth = math.ceil(self.depth / self.sf) + 1
        self.spram = bool(spram)
        #: One step per vector and constant weights: the unrolled pipeline (see above).
        self.unrolled = nf == sf == 1 and not self.spram and not self.output_steps
        members = {
            "i_stream": In(lanes_signature(in_type, lanes)),
            "o_stream": Out(lanes_signature(out_type, pe)),
        }
        if self.spram:
            members.update(LOAD_PORTS)
        super().__init__(members)

    def _serial_steps(self, weights: WeightMatrix, out_type: TensorType) -> int:
        """Steps a serial output stage of these weights takes: the bits of the requantize
        factors, or n compares for n-bit thresholds; 0 where there is no serial stage."""
        if weights.requantize is not None:
            factors, _, _ = self.datapath.requantize_constants(weights.requantize)
            return signed_shape(min(factors), max(factors)).width
        if weights.thresholds is not None and weights.thresholds.shape[1] > 1:
            return out_type.bits
        return 0

    @property
    def spram_halfwords(self) -> int:
        """Halfwords of this unit's SPRAM weight image (0 for a ROM)."""
        if not self.spram:
            return 0
        columns, _ = spram_shape(self.pe * self.w_lanes * self.weights.weight_bits,
                                 self.nf * self.sf)
        return columns * self.nf * self.sf

    def _weight_words(self) -> tuple[list[int], int]:
        """The weight words of the ``nf·sf`` steps (packed for DSPs with ``dsp_pack`` > 1),
        and their width."""
        wbits, pack = self.weights.weight_bits, self.dsp_pack
        stored_bits = packed_operand_bits(self.in_type.bits, wbits, pack)
        words = weight_words(pack_rows(self.weights.matrix, pack, self.in_type.bits + wbits),
                             stored_bits, self.pe // pack, self.w_lanes)
        width = (self.pe * self.w_lanes * wbits if pack == 1
                 else self.pe // pack * self.w_lanes * stored_bits)
        return words, width

    def _banked_weights(self, m: Module, words: list[int], width: int, per_bank: int, go,
                        w_addr) -> Value:
        """The weight word of the step issued with ``go`` at ``w_addr``, the cycle after (as
        a memory read port gives it), from banks of ``per_bank`` words (a power of two, or
        the whole depth, at least 2, for one bank) whose read data go into registers before
        the mux that picks the bank. The banks are read a cycle ahead: always at the address
        of the next step to issue (``w_addr``, or its successor while ``go``), so their data
        for a step are out the cycle it issues.

        On ECP5 the register after a bank becomes the block RAM's output register
        (:mod:`hwgen.toolchain.block_ram_registers`), and the unit's weight-word register that
        follows stays in the fabric, where the placer puts it near the dot products: a read
        never crosses the device to the dot products in the cycle their logic needs."""
        depth = len(words)
        succ = Signal(range(depth), init=1)  # the step after w_addr, wrapping to 0
        with m.If(go):
            m.d.sync += succ.eq(Mux(succ == depth - 1, 0, succ + 1))
        ahead = Mux(go, succ, w_addr)
        low = per_bank.bit_length() - 1 if per_bank < depth else len(ahead)
        held = []
        for b, first in enumerate(range(0, depth, per_bank)):
            bank = rom(width, min(per_bank, depth - first), words[first:first + per_bank])
            m.submodules[f"weights_bank{b}"] = bank
            port = bank.read_port()
            m.d.comb += port.addr.eq(ahead[:low])
            data = Signal(width, name=f"weights_bank{b}_held", reset_less=True)
            m.d.sync += data.eq(port.data)
            held.append(data)
        if len(held) == 1:
            return held[0]
        chosen = Signal(range(len(held)))  # the bank of the step issued last cycle
        m.d.sync += chosen.eq(w_addr[low:])
        return Array(held)[chosen]

    def _buffer_ahead(self, m: Module, buf_r, go, rd_idx, nf_i, sf_i, last_nf, last_sf,
                      nf_next, sf_next, bank_next) -> Value:
        """The input buffer's read data for the step issued with ``go``, the cycle after (as
        the read port gives it), read a cycle ahead as the weights are
        (:meth:`_banked_weights`) into a register that becomes the block RAM's output
        register on ECP5, so the word register after it stays in the fabric among the dot
        products it feeds. The address read is that of the step that can issue next cycle,
        chosen by ``go`` between two registers: the pending step's address and its
        successor's, the latter computed a cycle ahead from the steps' next state. (Its start
        value does not matter: no step issues before the buffer holds a vector, two or more
        writes after a reset.) The word read is never the one written that cycle: a vector's
        first step reads its word 0, and its bank is full only after its last word, another
        one, was written."""
        words, nf_count, sf_count = self.vector_words, self.nf, self.sf
        index_next = Mux(go, self._index_after(rd_idx, nf_i, sf_i, last_sf, last_nf), rd_idx)
        next_last_sf, next_last_nf = sf_next == sf_count - 1, nf_next == nf_count - 1
        succ_index = self._index_after(index_next, nf_next, sf_next, next_last_sf,
                                       next_last_nf)
        succ_bank = bank_next ^ (next_last_sf & next_last_nf)
        pending = Signal(range(2 * words))  # the pending step's address
        successor = Signal(range(2 * words))  # the address of the step after it
        ahead = Mux(go, successor, pending)
        m.d.sync += [pending.eq(ahead),
                     successor.eq(Mux(succ_bank, succ_index + words, succ_index))]
        m.d.comb += buf_r.addr.eq(ahead)
        held = Signal(len(buf_r.data), name="buffer_held", reset_less=True)
        m.d.sync += held.eq(buf_r.data)
        return held

    def _read_index(self, m: Module, go, last_sf, rd_done, nf_i, sf_i):
        """The buffer word (0 .. vector_words − 1) that step (``nf_i``, ``sf_i``) reads; ``go``
        advances the steps, ``last_sf`` ends a group, ``rd_done`` the vector."""
        raise NotImplementedError

    def _index_after(self, index, nf_i, sf_i, last_sf, last_nf):
        """The buffer word the step after step (``nf_i``, ``sf_i``) reads, from that step's
        word ``index`` (``last_sf`` and ``last_nf``: it ends its group, its vector's groups)."""
        raise NotImplementedError

    def _partials(self, m: Module, x_word, x_lane, w_word, w_lane, stage: Stage) -> list:
        """Per output channel of the group, the partial sum ``A`` of one step (see
        :class:`Datapath`) from the buffer word (``x_lane(k)``: element ``k``) and the weight
        word (``w_lane(p, k)``: channel ``p``'s weight ``k``), one cycle later: every path
        passes through exactly one ``stage`` register (:data:`~hwgen.rtl.arith.Stage`),
        placed about halfway."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        dp = self.datapath
        nf_count, sf_count, pe = self.nf, self.sf, self.pe
        lanes, w_lanes, words = self.lanes, self.w_lanes, self.vector_words
        ebits = 1 if self.in_type.binary else self.in_type.bits
        wbits = self.weights.weight_bits
        ram = block_ram(platform)  # None: block-RAM reads used as they come

        if self.unrolled:
            # The pipeline ``m`` (stages 0–5) advances while ``advance`` is high and freezes in
            # place otherwise; ``top`` holds the input register and the output buffer.
            top = Module()
            advance = Signal()
            x, x_valid = Signal(lanes * ebits), Signal()
            top.d.comb += self.i_stream.ready.eq(~x_valid | advance)
            with top.If(self.i_stream.ready):
                top.d.sync += [x.eq(self.i_stream.payload.as_value()),
                               x_valid.eq(self.i_stream.valid)]

            # Stages 0 and 1: the vector leaves the input register through two registers (the
            # folded pipeline's memory read and read data register); the weight word is a
            # constant.
            s0_valid, s0_word = Signal(), Signal(lanes * ebits)
            s1_valid, s1_first, s1_last = Signal(), Const(1), Const(1)
            s1_nf = Signal(range(nf_count))
            x_word = Signal(lanes * ebits)
            m.d.sync += [s0_valid.eq(x_valid), s0_word.eq(x),
                         s1_valid.eq(s0_valid), x_word.eq(s0_word)]
            (word,), width = self._weight_words()
            w_word = Const(word, width)
        else:
            # Input double buffer: bank b holds words b·V .. b·V + V − 1 (V = vector_words).
            # Collision-free: a half is written only while it is not full, and read (at
            # ``go``, the read enable) only while it is full.
            m.submodules.buffer = buffer = Memory(shape=unsigned(lanes * ebits), depth=2 * words,
                                                  init=[], attrs=COLLISION_FREE)
            buf_w = buffer.write_port()
            buf_r = buffer.read_port()
            # ``ready`` is a register too (taken from the next state, as ``go`` below).
            full, full_next = Signal(2), Signal(2)
            wr_bank, rd_bank, rd_bank_next = Signal(), Signal(), Signal()
            wr_idx = Signal(range(words))
            ready = Signal(init=1)
            i_fire = self.i_stream.valid & ready
            m.d.comb += [
                self.i_stream.ready.eq(ready),
                buf_w.addr.eq(Mux(wr_bank, wr_idx + words, wr_idx)),
                buf_w.data.eq(self.i_stream.payload.as_value()),
                buf_w.en.eq(i_fire),
            ]
            wr_done = Signal()
            m.d.comb += wr_done.eq(i_fire & (wr_idx == words - 1))
            with m.If(i_fire):
                m.d.sync += wr_idx.eq(Mux(wr_done, 0, wr_idx + 1))
            wr_bank_next = wr_bank ^ wr_done
            m.d.sync += [wr_bank.eq(wr_bank_next),
                         ready.eq(~Mux(wr_bank_next, full_next[1], full_next[0]))]

            # Issue: one step (nf, sf) per cycle while the read bank is full and there is
            # credit. ``go`` is a register: it takes, a cycle ahead, the condition on the state
            # the other registers take (``*_next``), so it is the same function of the state
            # as ever and reaches the memories' addresses and enables with no logic before it.
            nf_i = Signal(range(nf_count))
            sf_i, sf_next = Signal(range(sf_count)), Signal(range(sf_count))
            w_addr = Signal(range(nf_count * sf_count))
            pending = Signal(range(self.fifo_depth + 1))
            pending_next = Signal.like(pending)
            last_sf = sf_i == sf_count - 1
            go = Signal()
            m.d.sync += go.eq(Mux(rd_bank_next, full_next[1], full_next[0])
                              & ((sf_next != sf_count - 1) | (pending_next < self.fifo_depth)))
            if self.spram:
                m.submodules.weights = w_r = SpramWeights(pe * w_lanes * wbits, nf_count * sf_count)
                m.d.comb += [w_r.load_valid.eq(self.load_valid), w_r.load_first.eq(self.load_first),
                             w_r.load_data.eq(self.load_data), w_r.r_addr.eq(w_addr)]
                w_r_data = w_r.r_data
            else:
                init, width = self._weight_words()
                depth = nf_count * sf_count
                if ram is not None:
                    w_r_data = self._banked_weights(m, init, width,
                                                    bank_depth(ram, width, depth), go, w_addr)
                else:
                    m.submodules.weights = weights = rom(width, depth, init)
                    w_r = weights.read_port()
                    w_r_data = w_r.data
                    m.d.comb += w_r.addr.eq(w_addr)
            last_nf = nf_i == nf_count - 1
            rd_done = Signal()
            m.d.comb += rd_done.eq(go & last_sf & last_nf)
            rd_idx = self._read_index(m, go, last_sf, rd_done, nf_i, sf_i)
            nf_next = Signal.like(nf_i)
            m.d.comb += [
                sf_next.eq(Mux(go, Mux(last_sf, 0, sf_i + 1), sf_i)),
                nf_next.eq(Mux(go & last_sf, Mux(last_nf, 0, nf_i + 1), nf_i)),
                rd_bank_next.eq(rd_bank ^ rd_done),
            ]
            m.d.sync += [sf_i.eq(sf_next), nf_i.eq(nf_next), rd_bank.eq(rd_bank_next),
                         full.eq(full_next)]
            with m.If(go):
                m.d.sync += w_addr.eq(Mux(rd_done, 0, w_addr + 1))
            if ram is not None and words > 1:
                x_read = self._buffer_ahead(m, buf_r, go, rd_idx, nf_i, sf_i, last_nf, last_sf,
                                            nf_next, sf_next, rd_bank_next)
            else:
                m.d.comb += [buf_r.addr.eq(Mux(rd_bank, rd_idx + words, rd_idx)),
                             buf_r.en.eq(go)]
                x_read = buf_r.data
            for bank in range(2):
                m.d.comb += full_next[bank].eq(
                    (wr_done & (wr_bank == bank))
                    | (full[bank] & ~(rd_done & (rd_bank == bank))))

            # Stage 0: the memories' read data (behind a LUT mux where a memory spans several
            # block RAMs) arrive; stage 1 registers them, so no read reaches the dot products.
            s0_valid, s0_first, s0_last = Signal(), Signal(), Signal()
            s0_nf = Signal(range(nf_count))
            m.d.sync += [s0_valid.eq(go), s0_first.eq(sf_i == 0), s0_last.eq(last_sf),
                         s0_nf.eq(nf_i)]
            s1_valid, s1_first, s1_last = Signal(), Signal(), Signal()
            s1_nf = Signal(range(nf_count))
            x_word = Signal(lanes * ebits, reset_less=True)
            w_word = Signal(len(w_r_data), reset_less=True)
            m.d.sync += [s1_valid.eq(s0_valid), s1_first.eq(s0_first), s1_last.eq(s0_last),
                         s1_nf.eq(s0_nf), x_word.eq(x_read), w_word.eq(w_r_data)]

        def x_lane(k):
            v = x_word[k * ebits:(k + 1) * ebits]
            return v.as_signed() if self.in_type.signed and not self.in_type.binary else v

        def w_lane(p, k):
            v = w_word[(p * w_lanes + k) * wbits:(p * w_lanes + k + 1) * wbits]
            return v if wbits == 1 else v.as_signed()

        # Stage 2 (the dot products' first half, registered halfway through by ``stage``)
        # and stage 2b: registered partial sums.
        stage = registered(m, "dot")
        partials = self._partials(m, x_word, x_lane, w_word, w_lane, stage)
        mid_valid, mid_first, mid_last = Signal(), Signal(), Signal()
        mid_nf = Signal(range(nf_count))
        m.d.sync += [mid_valid.eq(s1_valid), mid_first.eq(s1_first), mid_last.eq(s1_last),
                     mid_nf.eq(s1_nf)]
        s2_valid, s2_first, s2_last = Signal(), Signal(), Signal()
        s2_nf = Signal(range(nf_count))
        s2_part = [Signal(partial.shape(), name=f"s2_part{p}") for p, partial in
                   enumerate(partials)]
        m.d.sync += [s2_valid.eq(mid_valid), s2_first.eq(mid_first), s2_last.eq(mid_last),
                     s2_nf.eq(mid_nf)]
        m.d.sync += [reg.eq(val) for reg, val in zip(s2_part, partials, strict=True)]
        if dp.mode == Mode.MASK_X:
            x_sum = sum_tree([x_lane(k) for k in range(lanes)], stage)
            s2_sum = Signal(x_sum.shape())
            m.d.sync += s2_sum.eq(x_sum)

        # Stage 3: accumulate (with one step per group, a step's sum is the group's); the
        # finished group's sums are held for quantization.
        def accumulate(part, shape, name: str):
            if sf_count == 1:
                return part
            acc, nxt = Signal(shape, name=f"acc{name}"), Signal(shape, name=f"acc_next{name}")
            m.d.comb += nxt.eq(Mux(s2_first, 0, acc) + part)
            with m.If(s2_valid):
                m.d.sync += acc.eq(nxt)
            return nxt

        acc_shape = int_shape(*dp.acc_range)
        res = [Signal(acc_shape, name=f"res{p}") for p in range(pe)]
        s3_valid = Signal()
        s3_nf = Signal(range(nf_count))
        m.d.sync += [s3_valid.eq(s2_valid & s2_last), s3_nf.eq(s2_nf)]
        sums = [accumulate(s2_part[p], acc_shape, str(p)) for p in range(pe)]
        with m.If(s2_valid & s2_last):
            m.d.sync += [reg.eq(value) for reg, value in zip(res, sums, strict=True)]
        if dp.mode == Mode.MASK_X:
            x_res = Signal(int_shape(*dp.sum_range))
            x_sum_group = accumulate(s2_sum, x_res.shape(), "_x")
            with m.If(s2_valid & s2_last):
                m.d.sync += x_res.eq(x_sum_group)

        # Stage 4: the output stage (:class:`~hwgen.rtl.output_stage.OutputStage`); a
        # parallel stage writes the FIFO the cycle after ``s3_valid``, a serial one when done.
        q_shape = signed_shape(dp.q_range[0], dp.q_range[1] + 1)
        q_values = [(res[p] << 1) - x_res if dp.mode == Mode.MASK_X else res[p] for p in range(pe)]
        lanes_out, out_valid = OutputStage(
            dp, self.weights, self.out_type, pe=pe, nf=nf_count, steps=self.output_steps,
            mac=self.mac, registered_reads=ram is not None and nf_count > 1).build(
                m, q_values, q_shape, mid_nf=mid_nf, s2_start=s2_valid & s2_last, s2_nf=s2_nf,
                s3_nf=s3_nf, s3_valid=s3_valid)
        out_bits = self.out_type.bits

        # Stage 5: the output lanes registered, so the output stage's logic does not reach the
        # output FIFO or buffer.
        packed = []
        for p, value in enumerate(lanes_out):
            lane = Signal(out_bits, name=f"out{p}")
            m.d.sync += lane.eq(value)
            packed.append(lane)
        data, valid = Cat(*packed), Signal(name="out_valid")
        m.d.sync += valid.eq(out_valid)
        if self.unrolled:
            output_buffer(top, self.o_stream, data, valid, advance)
            top.submodules.pipeline = EnableInserter(advance)(m)
            return top

        # Output FIFO; ``pending`` counts groups issued and not yet read out.
        m.submodules.fifo = out_fifo = fifo.SyncFIFO(width=pe * out_bits, depth=self.fifo_depth)
        w = out_fifo.w_stream
        m.d.comb += [w.valid.eq(valid), w.payload.eq(data)]
        wiring.connect(m, out_fifo.r_stream, wiring.flipped(self.o_stream))
        o_fire = self.o_stream.valid & self.o_stream.ready
        issued = go & last_sf
        m.d.comb += pending_next.eq(pending + issued - o_fire)
        m.d.sync += pending.eq(pending_next)
        return m
