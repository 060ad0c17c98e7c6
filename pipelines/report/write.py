"""The entry point: ``write_report`` computes, renders and writes the page; ``default_path`` says where."""

from __future__ import annotations

import datetime as dt

import pyarrow.fs as pafs

from pipelines.report.render import render_html
from pipelines.report.sections import build_sections
from transforms.errors import UserError
from transforms.io.files import write_atomically
from transforms.io.lake import Lake

DEFAULT_REPORT = ("_report", "index.html")


def default_path(lake_uri: str) -> str:
    """Where ``wirestream report`` writes when no ``--out`` is given: ``LAKE/_report/index.html``."""
    lake = Lake(lake_uri)
    return lake.path(*DEFAULT_REPORT)


def write_report(lake_uri: str, out: str | None = None) -> str:
    """Compute, render and write the report (atomically); its path (an ``s3://`` URL on S3)."""
    lake = Lake(lake_uri)
    if lake.local and lake.fs.get_file_info(lake.root).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"no lake at {lake_uri}")
    page = render_html(lake_uri, build_sections(lake_uri), dt.datetime.now(dt.UTC))
    if out is None:
        path = default_path(lake_uri)
        try:
            lake.create_folder(path.rsplit("/", 1)[0])
            lake.write_atomically(path, page.encode("utf-8"))
        except OSError as error:
            raise UserError(
                f"cannot write the report to {lake.url(path)}: {error}; give --out FILE where you can write"
            ) from error
        return lake.url(path)
    from pathlib import Path

    target = Path(out)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(pafs.LocalFileSystem(), str(target.resolve()), page.encode("utf-8"))
    except OSError as error:
        raise UserError(f"cannot write the report to {target}: {error}; give an --out where you can write") from error
    return str(target)
