"""The expectation suite over a batch's articles: verdicts, quarantine, reports and Data Docs (no Beam).

The suite (``schemas/expectations/articles.json``, Great Expectations 1.x) runs once per Kafka
batch over one pandas DataFrame of the batch's articles, never row by row. Each expectation's
``meta`` gives it a ``name`` (what ``quarantine.failed_expectations`` holds) and a ``level``:

* ``row``: rows it names through ``unexpected_index_list`` (by the derived ``row`` column, the
  article's position in the batch, since ids could repeat) become :class:`Quarantined` with the
  names of every row-level expectation they broke;
* ``batch``: reported in the batch's results; with ``policy="fail"`` every article of a batch that
  breaks one goes to ``quarantine`` too (its own row failures plus the batch expectations' names),
  so nothing from a failed batch lands in ``articles``. ``warn`` (the default) only reports.
* ``monitor``: reported only (``failed_monitors``), never quarantining, whatever the policy: a
  property of the feed rather than a fault of its rows (the language mix, the share of copies).

The stage (``transforms.quality.ValidateBatch``) runs *before* deduplication (see
``pipelines/ingest.py``): an article is quarantined before it can become another's original, so
every ``duplicates.duplicate_of`` names an article that reached ``articles``. It therefore sees a
batch's copies too, and no entities yet (the entity checks are the NER stage's own, and
``wirestream validate`` runs them on the lake). Each report also counts the batch's articles by
language (``languages``), the language mix the report charts.

Never a crash, never a lost record: each record keeps exactly one outcome. If validation itself
raises (a bug, a broken suite), the error is logged and counted (``batches_not_validated``); with
``warn`` the batch passes through unvalidated, with ``fail`` its articles are quarantined with
``validation_error``.

Results: each validated batch (one holding at least one article) writes
``LAKE/_quality/results/<batch key>.json`` (the full report, GX's result included),
``LAKE/_quality/summaries/<batch key>.json`` (what the index reads) and
``LAKE/_quality/docs/batches/<batch key>.html`` (temporary name, then rename; the same names on a
replay, so a replay overwrites rather than adds). The stage writes them through the
:class:`QualityStore` it is given; the lake's, with the writing and the index's reading, is
:mod:`transforms.io.quality_store`. A report that cannot be written is logged and
counted (``reports_not_written``); the batch's data still flows. They are written *before* the batch's data is
committed by ``WriteLake``: after a crash in between, the report exists for a batch that is not in
the lake until the replay rewrites it (see ``transforms.io.quality_store.report_states``, which the index uses to tell
committed, uncommitted and superseded reports apart). ``LAKE/_quality/docs/index.html`` lists the
reports by run; the stage rebuilds it at most every ``index_interval_seconds`` per worker and the
launcher (``pipelines/ingest.py``) rebuilds it when the run ends.

No Beam and no IO here: ``wirestream validate`` (and every other read-side command) imports this
package; the Beam stage around it, ``ValidateBatch``, is :mod:`transforms.quality`. The package
re-exports the names of its modules, one job each:

* :mod:`~transforms.quality_core.suite`: the suite file, :class:`QualityConfig`, the DataFrame
  the suite validates and :class:`SuiteValidator` (Great Expectations);
* :mod:`~transforms.quality_core.verdict`: failing rows and batches, quarantine, the report dict;
* :mod:`~transforms.quality_core.reports`: the report's files, the Data Docs HTML and the
  :class:`QualityStore` protocol.
"""

from transforms.quality_core.reports import (
    QUALITY,
    SUMMARY_FIELDS,
    QualityStore,
    render_batch_page,
    render_index,
    report_summary,
)
from transforms.quality_core.suite import (
    INDEX_COLUMNS,
    LEVELS,
    POLICIES,
    STAGE,
    SUITE_PATH,
    UNDETERMINED,
    QualityConfig,
    SuiteValidator,
    articles_frame,
    checked_validator,
    load_suite,
    records_frame,
    suite_version,
)
from transforms.quality_core.verdict import (
    VALIDATION_ERROR,
    Verdict,
    apply_verdict,
    batch_failures,
    monitor_failures,
    row_failures,
    summarise,
    validate_articles,
)

__all__ = [
    "INDEX_COLUMNS",
    "LEVELS",
    "POLICIES",
    "QUALITY",
    "STAGE",
    "SUITE_PATH",
    "SUMMARY_FIELDS",
    "UNDETERMINED",
    "VALIDATION_ERROR",
    "QualityConfig",
    "QualityStore",
    "SuiteValidator",
    "Verdict",
    "apply_verdict",
    "articles_frame",
    "batch_failures",
    "checked_validator",
    "load_suite",
    "monitor_failures",
    "records_frame",
    "render_batch_page",
    "render_index",
    "report_summary",
    "row_failures",
    "suite_version",
    "summarise",
    "validate_articles",
]
