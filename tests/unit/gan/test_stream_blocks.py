from __future__ import annotations

import torch

from worker.gan.seeding import Stream
from worker.gan.stream_blocks import DRAWS_PER_BLOCK, BlockStream


def _normal_stream(rank: int = 0) -> BlockStream:
    return BlockStream(lambda n, g: torch.randn(n, 3, generator=g), 5, 11, Stream.LATENTS, rank)


def test_a_draw_is_the_same_whether_reached_in_order_or_straight_after_a_resume() -> None:
    walked = _normal_stream()
    draws = [walked.rows(d).clone() for d in range(1, 2 * DRAWS_PER_BLOCK + 3)]
    for draw in (1, DRAWS_PER_BLOCK, DRAWS_PER_BLOCK + 1, 2 * DRAWS_PER_BLOCK + 2):
        assert torch.equal(_normal_stream().rows(draw), draws[draw - 1])
    assert all(rows.shape == (5, 3) for rows in draws)
    distinct = {tuple(rows.flatten().tolist()) for rows in draws}
    assert len(distinct) == len(draws)  # no draw repeats another, across blocks too


def test_ranks_draw_different_rows() -> None:
    assert not torch.equal(_normal_stream(rank=0).rows(3), _normal_stream(rank=1).rows(3))
