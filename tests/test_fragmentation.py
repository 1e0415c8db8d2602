"""Fragmentation metrics and /proc/buddyinfo: worked examples from the mm/vmstat.c formulas."""

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import fphlib
from fphlib.guest.buddy import BuddyAllocator
from fphlib.guest.fragmentation import (
    format_buddyinfo,
    fragmentation_index,
    parse_buddyinfo,
    unusable_index,
)

# 4 order-0, 2 order-1 and 1 order-2 free blocks: 7 blocks, 12 pages
SMALL = [4, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]


def test_public_names():
    assert fphlib.fragmentation_index is fragmentation_index
    assert fphlib.unusable_index is unusable_index
    assert fphlib.parse_buddyinfo is parse_buddyinfo
    assert fphlib.format_buddyinfo is format_buddyinfo


@pytest.mark.parametrize(
    ("nr_free", "order", "expected"),
    [
        # no free block of order >= 3: 1000 - (1000 + 12*1000/8) / 7 = 1000 - 2500/7 = 643
        (SMALL, 3, 643),
        (SMALL, 2, -1000),  # an order-2 block is free: the allocation would succeed
        (SMALL, 0, -1000),
        ([0] * 11, 5, 0),  # nothing free at all
        # 3 single pages asked for order 10: 1000 - (1000 + 3000/1024) / 3 = 1000 - 1002/3
        ([3] + [0] * 10, 10, 666),
        ([3] + [0] * 10, 1, 1000 - (1000 + 1500) // 3),  # = 167
        # 100000 single pages: (1000 + 97656) / 100000 rounds down to 0, index 1000
        ([100_000] + [0] * 10, 10, 1000),
        # the formula goes negative: one order-9 block asked for order 10 -> 1000 - 1500
        ([0] * 9 + [1, 0], 10, -500),
    ],
)
def test_fragmentation_index_worked_examples(nr_free, order, expected):
    assert fragmentation_index(nr_free, order) == expected


@pytest.mark.parametrize(
    ("nr_free", "order", "expected"),
    [
        (SMALL, 3, 1000),  # (12 - 0) * 1000 / 12
        (SMALL, 2, 666),  # (12 - 1*4) * 1000 / 12 = 666.6
        (SMALL, 1, 333),  # suitable = 2 + 1*2 = 4 order-1 blocks: (12 - 8) * 1000 / 12
        (SMALL, 0, 0),
        ([0] * 11, 0, 1000),  # nothing free: fully unusable
        ([0] * 9 + [1, 1], 9, 0),  # 512 + 1024 pages, all in blocks >= order 9
        ([0] * 9 + [1, 1], 10, 333),  # 512 of 1536 pages below order 10
    ],
)
def test_unusable_index_worked_examples(nr_free, order, expected):
    assert unusable_index(nr_free, order) == expected


@given(st.lists(st.integers(0, 10**6), min_size=11, max_size=11), st.integers(0, 10))
def test_indices_against_their_definitions(nr_free, order):
    pages = sum(n << o for o, n in enumerate(nr_free))
    below = sum(n << o for o, n in enumerate(nr_free) if o < order)
    assert unusable_index(nr_free, order) == (1000 if pages == 0 else below * 1000 // pages)
    fi = fragmentation_index(np.array(nr_free), order)
    if sum(nr_free) == 0:
        assert fi == 0
    elif any(nr_free[order:]):
        assert fi == -1000
    else:
        assert -1000 < fi <= 1000


def test_metrics_of_an_allocator():
    b = BuddyAllocator(2048)
    assert b.alloc(10) == 0
    assert b.alloc(0) == 1024  # free: one block of each order 0..9
    assert unusable_index(b.nr_free, 10) == 1000
    # 10 blocks, 1023 pages: 1000 - (1000 + 1023000/1024) / 10 = 1000 - 1999/10
    assert fragmentation_index(b.nr_free, 10) == 1000 - 199
    assert fragmentation_index(b.nr_free, 9) == -1000


def test_format_buddyinfo_is_byte_exact():
    line = format_buddyinfo([3, 0, 12, 5, 1, 0, 0, 0, 0, 0, 1024])
    assert line == (
        "Node 0, zone   Normal      3      0     12      5      1      0      0      0      0"
        "      0   1024 \n"
    )
    assert format_buddyinfo(np.array([1234567, 1]), node=1, zone="DMA32") == (
        "Node 1, zone    DMA32 1234567      1 \n"
    )
    assert format_buddyinfo([0], zone="LongZoneName") == "Node 0, zone LongZoneName      0 \n"


PROC = """\
Node 0, zone      DMA      1      1      1      0      2      1      1      0      1      1      3 
Node 0, zone    DMA32      6      5      7      6      8      6      6      5      6      4    381 
Node 0, zone   Normal    104    327    245    132     46     16      8      7      3      2   1045 

Node 1, zone   Normal      0      1      2      3      4      5      6      7      8      9     10 
"""  # noqa: W291 (the kernel's trailing spaces)


def test_parse_buddyinfo():
    zones = parse_buddyinfo(PROC)
    assert list(zones) == [(0, "DMA"), (0, "DMA32"), (0, "Normal"), (1, "Normal")]
    assert zones[(0, "Normal")].tolist() == [104, 327, 245, 132, 46, 16, 8, 7, 3, 2, 1045]
    assert zones[(1, "Normal")].tolist() == list(range(11))
    assert zones[(0, "DMA")].dtype == np.int64


def test_parse_format_round_trip():
    text = "".join(
        format_buddyinfo(counts, node, zone)
        for (node, zone), counts in parse_buddyinfo(PROC).items()
    )
    assert text == PROC.replace("\n\n", "\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Node 0 zone Normal 1 2\n", "line 1"),
        ("\nNode 0, zone Normal\n", "line 2"),
        ("Node 0, zone Normal 1 -2\n", "line 1"),
        ("Node 0, zone Normal 1 2\nNode 0, zone DMA 1 x\n", "line 2"),
        ("Node 0, zone Normal 1\nNode 0, zone Normal 2\n", "line 2: node 0 zone Normal repeated"),
        ("garbage", "line 1: expected 'Node <n>, zone <name> <count> ...', got 'garbage'"),
    ],
)
def test_parse_buddyinfo_rejects_malformed_lines(text, message):
    with pytest.raises(ValueError, match=message):
        parse_buddyinfo(text)


def test_bad_arguments():
    with pytest.raises(ValueError, match="order must be in 0..10"):
        fragmentation_index(SMALL, 11)
    with pytest.raises(ValueError, match="order must be an integer"):
        unusable_index(SMALL, 1.0)
    with pytest.raises(ValueError, match=r"nr_free\[1\] must be >= 0, got -2"):
        unusable_index([1, -2], 0)
    with pytest.raises(ValueError, match="nr_free must hold integers"):
        fragmentation_index([1.5], 0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        format_buddyinfo([])
    with pytest.raises(ValueError, match="node must be a non-negative integer"):
        format_buddyinfo([1], node=-1)
    with pytest.raises(ValueError, match="zone must be a non-empty name without spaces"):
        format_buddyinfo([1], zone="Nor mal")
    with pytest.raises(ValueError, match="must be a str"):
        parse_buddyinfo(b"Node 0, zone Normal 1")
