"""Downstream recipes: reading the wirestream lake with DuckDB, pyarrow.dataset, polars and pyiceberg.

Each reads a Hive lake and an Iceberg lake (``LAKE/_catalog/`` exists) alike; ``pyiceberg_scan``
reads only Iceberg lakes.

Each module runs as a script (``python -m examples.recipes.<name> LAKE --first DAY --last DAY``)
and exposes the functions the tests compare with each other and with a plain computation.
"""
