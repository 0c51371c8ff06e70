"""Write the reference designs whose weights are synthetic (random, from a fixed seed).

    python designs/make_synthetic.py [--out designs]

writes face32_bnn.toml/.npz, cnv_w1a1.toml/.npz and human_detect.toml/.npz. No face, CIFAR-10
or person data ships here, so their weights are random (±1 with thresholds near the middle of
each channel's range; human_detect's n-bit with power-of-two requantization): the networks
are exact in topology, bit widths, folding, resources and cycles, not in accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwgen import spec  # noqa: E402
from hwgen.builders import POOL, bnn_cnn, requantized_cnn  # noqa: E402

SYNTHETIC = "Synthetic weights (random ±1 from seed {seed}, thresholds mid-range): resources, " \
            "timing and bit-exactness are real, accuracy is not.\nMade by " \
            "designs/make_synthetic.py with hwgen.builders.bnn_cnn."


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent),
                        help="directory for the TOML + NPZ files (default: designs/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for make in (face32_bnn, cnv_w1a1, human_detect):
        network = make(args.seed)
        spec.save(network, out / f"{network.name}.toml",
                  header=SYNTHETIC.format(seed=args.seed))
        print(f"wrote {out / network.name}.toml and .npz")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
