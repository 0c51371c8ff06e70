"""Write the reference designs whose weights are synthetic (random, from a fixed seed).

    python designs/make_synthetic.py [--out designs]

writes face32_bnn.toml/.npz, cnv_w1a1.toml/.npz, human_detect.toml/.npz and
vww_shufflenet.toml/.npz. No face, CIFAR-10 or person data ships here, so their weights are
random (±1 with thresholds near the middle of each channel's range; human_detect's and
vww_shufflenet's n-bit with power-of-two requantization): the networks are exact in topology,
bit widths, folding, resources and cycles, not in accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwgen import spec  # noqa: E402
from hwgen.builders import POOL, bnn_cnn, requantized_cnn, shufflenet_v2  # noqa: E402

SYNTHETIC = "Synthetic weights (random ±1 from seed {seed}, thresholds mid-range): resources, " \
            "timing and bit-exactness are real, accuracy is not.\nMade by " \
            "designs/make_synthetic.py with hwgen.builders.bnn_cnn."
#: vww_shufflenet's header: its weights are n-bit and its scales powers of two.
SYNTHETIC_REQUANTIZED = "Synthetic weights (random n-bit from seed {seed}, power-of-two " \
    "requantization): resources, timing and bit-exactness are real, accuracy is not.\nMade " \
    "by designs/make_synthetic.py with hwgen.builders.shufflenet_v2."


def face32_bnn(seed: int = 0):
    """The face-detection BNN: 32×32×3 u8, 3×3 convs 64, 64, 128 each followed by a 2×2
    maxpool, then a binary-weight 2-way classifier; folded for the iCE40 UP5K, whose block RAM
    (15 KB) cannot hold the 14.2 KB of weights next to the line buffers: conv2's and conv3's
    weights (4.5 + 9 KB) go to two SPRAMs, loaded after configuration."""
    return bnn_cnn((32, 32, 3), [64, 64, 128], classes=2, classifier_bits=1,
                   folding={"conv1": (4, 3), "conv2": (1, 16), "conv3": (1, 16),
                            "classifier": (1, 16)},
                   weight_memory={"conv2": "spram", "conv3": "spram"},
                   name="face32_bnn", seed=seed)


def cnv_w1a1(seed: int = 0):
    """The CIFAR-10 BNN "CNV": valid 3×3 convs 64, 64, pool, 128, 128, pool, 256, 256, dense
    512, 512 and a 16-bit classifier, 8-bit first layer; folded for the ECP5-85F at about
    58 k cycles per inference."""
    return bnn_cnn((32, 32, 3), [64, 64, POOL, 128, 128, POOL, 256, 256], dense=[512, 512],
                   classes=10, padding="valid", classifier_bits=16,
                   folding={"conv1": (16, 3), "conv2": (16, 32), "conv3": (8, 32),
                            "conv4": (8, 32), "conv5": (2, 32), "conv6": (1, 32),
                            "fc1": (1, 4), "fc2": (1, 8), "classifier": (1, 1)},
                   name="cnv_w1a1", seed=seed)


#: Lattice's human-detection CNN, per layer "C" (16-bit weights) or "B" (1-bit): the mixes
#: of its reference table, whose weights total 1371 / 1169 / 899 / 831 / 291 KiB.
HUMAN_DETECT_MIXES = ("CCCCCCC", "CCBBCCC", "CCBBBCC", "CBBBBCC", "CBBBBBC")


def human_detect(seed: int = 0, mix: str = "CBBBBBC"):
    """Lattice's human-detection CNN on 128×128×3 u8: 3×3 convs 64, pool, 64, 64, pool,
    128, 128, pool, 256, pool and a 3×3 conv of 48 (the detection map, 8×8×48), activations
    u8 (requantized); per layer 16-bit ("C") or 1-bit ("B") weights as ``mix`` says. Shipped
    as CBBBBBC, the mix with the least weight memory (291 KiB)."""
    return requantized_cnn((128, 128, 3), [64, POOL, 64, 64, POOL, 128, 128, POOL, 256, POOL,
                                           48],
                           [16 if m == "C" else 1 for m in mix], name="human_detect",
                           seed=seed)


#: The HAWQ report's Visual Wake Words ShuffleNetV2-0.5× bits, per layer (glob patterns on
#: hwgen.builders.shufflenet_v2's layer names, first match): conv3×3 W8, stage1 W8, stage2
#: W6/8 (depthwise 8, pointwise 6), stage3 W5/6/8 (depthwise 8, the stride-2 unit's pointwise
#: 6, the other units' 5), conv1×1 W6; the 2-way classifier (not in the report) W8.
VWW_WEIGHT_BITS = {"conv1": 8, "s1*": 8, "s2*_dw*": 8, "s2*": 6, "s3*_dw*": 8, "s3u1_*": 6,
                   "s3*": 5, "conv5": 6, "fc": 8}


def vww_shufflenet(seed: int = 0):
    """The HAWQ report's Visual Wake Words ShuffleNetV2-0.5×: 96×96×3 input read at 6 bits
    (conv3×3 W8A6: A is what a layer reads), a stride-1 3×3 conv of 24, a 2×2 maxpool (the
    original's 3×3 stride-2 pool padded 1 gives the same 48×48), stages of 4, 8, 4 units to
    48, 96, 192 channels, a 1×1 conv of 192 (not 1024: the report's 1.3 M MACs are 6·6·192·192),
    a global sum pool and a 2-way (person / no person) classifier. Activations 8-bit:
    pointwise outputs unsigned (ReLU), depthwise outputs signed (no ReLU)."""
    return shufflenet_v2((96, 96, 3), (24, 48, 96, 192), (4, 8, 4), last=192, classes=2,
                         first_stride=1, pool=2, weight_bits=VWW_WEIGHT_BITS, act_bits=8,
                         input_bits=6, classifier_bits=8, name="vww_shufflenet", seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent),
                        help="directory for the TOML + NPZ files (default: designs/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for make in (face32_bnn, cnv_w1a1, human_detect, vww_shufflenet):
        network = make(args.seed)
        header = SYNTHETIC_REQUANTIZED if make is vww_shufflenet else SYNTHETIC
        spec.save(network, out / f"{network.name}.toml", header=header.format(seed=args.seed))
        print(f"wrote {out / network.name}.toml and .npz")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
