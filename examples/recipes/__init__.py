"""Downstream recipes: reading the wirestream lake with DuckDB, pyarrow.dataset and polars.

Each module runs as a script (``python -m examples.recipes.<name> LAKE --first DAY --last DAY``)
and exposes the functions the tests compare with each other and with a plain computation.
"""
