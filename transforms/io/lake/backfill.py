"""Filling a never-null column that older files lack, exactly, from the table that always held it.

Tables gain columns (docs/lake.md, "Versioning"). A nullable one reads as null in older files; a
never-null one (:data:`schemas.arrow.LATER_COLUMNS`: ``entities.ingested_at``,
``dead_letters.ingested_at``) cannot be left null in a file written with the table's schema, so
:mod:`~transforms.io.lake.compaction` fills it here before merging older and newer files.

Invariants: a value is only ever copied from the source row with the same keys in the same
partition folder, never guessed; a row that already has a value keeps it; the row order is kept;
when some row has no source row, :func:`filled` answers ``None`` and nothing is written. No Beam.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from schemas import arrow
from transforms.io.lake.layout import data_files
from transforms.io.lake.store import Lake

__all__ = ["fill", "filled"]


_ROW, _FOUND = "__row", "__found"


def fill(rows: pa.Table, later: arrow.LaterColumn, source: pa.Table) -> pa.Table | None:
    """``rows`` with each null of ``later.column`` taken from the ``source`` row with the same keys.

    ``None`` when some null row has no such row in ``source`` (a value is never invented), or
    when ``source`` holds a key twice (it cannot say which value is right).
    """
    if not rows[later.column].null_count:
        return rows
    keys = list(later.keys)
    found = source.select([*keys, later.column]).rename_columns([*keys, _FOUND])
    numbered = rows.select(keys).append_column(_ROW, pa.array(range(rows.num_rows), pa.int64()))
    joined = numbered.join(found, keys=keys, join_type="left outer").sort_by(_ROW)
    if joined.num_rows != rows.num_rows:
        return None
    values = pc.coalesce(rows[later.column], joined[_FOUND])
    if values.null_count:
        return None
    field = rows.schema.field(later.column)
    return rows.set_column(rows.schema.get_field_index(later.column), field, values.cast(field.type))


def filled(lake: Lake, table: str, folder: str, rows: pa.Table) -> pa.Table | None:
    """``rows`` of ``table`` from ``folder`` with every later never-null column filled.

    ``folder`` is ``table/dt=.../hour=...``; values come from the source table's files in the same
    partition (:data:`schemas.arrow.LATER_COLUMNS`), read only when a null is there to fill.
    ``None`` when one cannot be filled.
    """
    for later in arrow.LATER_COLUMNS:
        if later.table != table or not rows[later.column].null_count:
            continue
        import pyarrow.dataset as ds  # loads pandas (about 0.4 s): only when an older file is merged

        files = data_files(lake, f"{later.source}/{folder.removeprefix(f'{table}/')}", recursive=False)
        source_schema = arrow.STORED_TABLES[later.source]
        source = ds.dataset(files, schema=source_schema, format="parquet", filesystem=lake.fs).to_table(
            columns=[*later.keys, later.column]
        )
        result = fill(rows, later, source)
        if result is None:
            return None
        rows = result
    return rows
