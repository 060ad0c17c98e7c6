"""Offset ranges ``[first, end)`` of one topic-partition: merging them and finding where a gapless run ends.

Pure functions over plain tuples, shared by the Kafka source (where to resume), the lake sink (what
to commit to the consumer group) and the read side (which quality reports are committed); no Beam,
no Kafka client.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["first_uncovered", "gapless_reach", "merge_ranges"]


def merge_ranges(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping ``[first, end)`` ranges; touching ranges are joined."""
    merged: list[tuple[int, int]] = []
    for first, end in sorted(ranges):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((first, end))
    return merged


def first_uncovered(origin: int, merged: Sequence[tuple[int, int]]) -> int:
    """The first offset at or after ``origin`` that no (merged, sorted) covered range holds."""
    start = origin
    for first, end in merged:
        if first > start:
            break
        start = max(start, end)
    return start


def gapless_reach(covered: Sequence[tuple[int, int]], origin: int | None) -> int | None:
    """Where the run of covered offsets from ``origin`` ends; None when nothing is covered.

    With no recorded origin (a lake from before origins were recorded) the run starts at the
    first covered offset.
    """
    merged = merge_ranges(covered)
    if not merged:
        return None
    return first_uncovered(merged[0][0] if origin is None else origin, merged)
