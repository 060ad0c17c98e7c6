from types import SimpleNamespace

from transforms.io.kafka import PartitionPlan, merge_ranges, resume_plan
from transforms.io.kafka.plan import SkipList, unskipped_runs


def test_merge_ranges_joins_touching_and_overlapping() -> None:
    assert merge_ranges([(5, 8), (0, 3), (3, 5), (10, 12), (11, 15)]) == [(0, 8), (10, 15)]


def test_empty_lake_starts_at_the_group_commit_or_earliest() -> None:
    assert resume_plan("t", 0, [], None, 0, 100, True) == PartitionPlan("t", 0, 0, 100)
    assert resume_plan("t", 0, [], 40, 0, 100, False) == PartitionPlan("t", 0, 40, None)
    assert resume_plan("t", 0, [], None, 0, 100, False, reset_to_earliest=False).start_offset == 100


def test_lake_wins_over_a_stale_or_reset_group_commit() -> None:
    plan = resume_plan("t", 1, [(0, 50), (50, 80)], 0, 0, 100, True)
    assert (plan.start_offset, plan.stop_offset, plan.skip) == (80, 100, ())
    ahead = resume_plan("t", 1, [(0, 50)], 90, 0, 100, True)
    assert ahead.start_offset == 50


def test_later_covered_ranges_are_skipped() -> None:
    plan = resume_plan("t", 0, [(0, 10), (20, 30), (40, 45)], None, 0, 100, True)
    assert (plan.start_offset, plan.skip) == (10, ((20, 30), (40, 45)))


def test_retention_moves_the_start_forward() -> None:
    assert resume_plan("t", 0, [(0, 10)], None, 25, 100, True).start_offset == 25


def test_batches_never_straddle_a_skipped_range() -> None:
    records = [SimpleNamespace(offset=o) for o in (10, 11, 12, 20, 21, 30, 31)]
    runs = [[r.offset for r in run] for run in unskipped_runs(records, SkipList([(12, 13), (21, 30)]))]
    assert runs == [[10, 11], [20], [30, 31]]


def test_a_gap_before_the_first_covered_run_is_read_when_the_origin_is_known() -> None:
    """Batches of a partition can commit out of order; a kill between leaves [0, 100) missing."""
    plan = resume_plan("t", 0, [(100, 200), (200, 740)], 740, 0, 740, True, origin=0)
    assert (plan.start_offset, plan.stop_offset, plan.skip) == (0, 740, ((100, 740),))
    later = resume_plan("t", 0, [(0, 100), (200, 300)], None, 0, 400, True, origin=0)
    assert (later.start_offset, later.skip) == (100, ((200, 300),))


def test_offsets_before_the_origin_are_not_read() -> None:
    plan = resume_plan("t", 0, [(500, 600)], None, 0, 700, True, origin=500)
    assert (plan.start_offset, plan.skip) == (600, ())
    assert resume_plan("t", 0, [], 300, 0, 700, True, origin=500).start_offset == 500


def test_retention_past_the_origin_starts_at_the_first_uncovered_kept_offset() -> None:
    plan = resume_plan("t", 0, [(20, 40)], None, 25, 100, True, origin=0)
    assert (plan.start_offset, plan.skip) == (40, ())
