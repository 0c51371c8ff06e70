"""Block-RAM read styles: the banks a weight memory is split into on ECP5, and which
platforms register reads."""

import pytest

from hwgen.rtl.memory import DP16KD, BlockRam, bank_depth, block_ram
from hwgen.toolchain.boards import board


@pytest.mark.parametrize("width,depth,expected", [
    # cnv_w1a1's conv5: 512×36 needs 2·9 = 18 DP16KDs, 1K×18 4·5 = 20, 8K×2 32
    (64, 4608, 512),
    # conv6: 512×36, 1K×18 and 2K×9 all need 36; the deepest wins the tie
    (32, 18432, 2048),
    # cnv_w1a1's fc2: 2K×9 … 16K×1 all need 16; two banks of 16K×1
    (8, 32768, 16384),
    # 4K×4 holds it in one block RAM: one bank
    (4, 4096, 4096),
    # narrow and deep: 16K×1 per bit, two banks
    (1, 20000, 16384),
    # shallow: one bank of its own depth
    (100, 300, 300),
])
def test_bank_depth_follows_the_fewest_dp16kds(width, depth, expected):
    assert bank_depth(DP16KD, width, depth) == expected


def test_bank_depth_refuses_an_empty_memory():
    with pytest.raises(ValueError, match="0 × 8"):
        bank_depth(DP16KD, 0, 8)


def test_only_ecp5_registers_reads():
    assert block_ram(board("ulx3s-85f").platform()) is DP16KD
    assert block_ram(board("icebreaker").platform()) is None and block_ram(None) is None
    tiny = BlockRam("tiny", ((4, 8),))
    assert block_ram(type("P", (), {"hwgen_block_ram": tiny})()) is tiny
