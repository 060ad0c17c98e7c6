"""Which Iceberg catalog a lake has, decided before any catalog is opened (no server, no pyiceberg catalog).

A lake's catalog never changes: the REST URI is recorded at creation and found again without the
option; another URI, or a URI for a lake on its embedded SQLite catalog, is refused; the URI names a
place only; the REST catalog's S3 file IO settings
come from the lake's own ``AWS_*`` environment.
"""

from __future__ import annotations

import json

import pytest

from pipelines.lake_check import catalog_uri_for, table_format_for
from transforms.errors import UserError
from transforms.io.lake import Lake
from transforms.io.lake.iceberg import check_catalog_uri, recorded_catalog_uri
from transforms.io.lake.iceberg.catalog import s3_properties


def _recorded(tmp_path, uri: str) -> Lake:
    (tmp_path / "_catalog").mkdir()
    (tmp_path / "_catalog" / "catalog.json").write_text(json.dumps({"catalog": "rest", "uri": uri}))
    return Lake(str(tmp_path))


def test_a_catalog_uri_names_a_place_without_its_trailing_slash() -> None:
    assert check_catalog_uri("http://catalog.internal:8181/") == "http://catalog.internal:8181"
    assert check_catalog_uri("https://polaris.example/api/catalog") == "https://polaris.example/api/catalog"
    for bad in ("catalog:8181", "thrift://metastore:9083", "http://user:secret@host/", "http://host/?token=abc"):
        with pytest.raises(ValueError, match="REST catalog URI"):
            check_catalog_uri(bad)


def test_the_recorded_uri_is_found_without_the_option_and_another_is_refused(tmp_path) -> None:
    lake = _recorded(tmp_path, "http://127.0.0.1:18181")
    assert recorded_catalog_uri(lake) == "http://127.0.0.1:18181"
    assert catalog_uri_for(lake, "") == "http://127.0.0.1:18181"
    assert catalog_uri_for(lake, "http://127.0.0.1:18181/") == "http://127.0.0.1:18181"
    with pytest.raises(UserError, match="records the Iceberg catalog http://127.0.0.1:18181, not http://other:8181:"):
        catalog_uri_for(lake, "http://other:8181")


def test_a_uri_for_a_lake_on_its_embedded_catalog_is_refused_and_a_new_lake_takes_it(tmp_path) -> None:
    new = Lake(str(tmp_path / "new"))
    assert catalog_uri_for(new, "http://127.0.0.1:18181/") == "http://127.0.0.1:18181"
    assert catalog_uri_for(new, "") == ""
    (tmp_path / "sqlite" / "_catalog").mkdir(parents=True)
    with pytest.raises(UserError, match="embedded SQLite catalog"):
        catalog_uri_for(Lake(str(tmp_path / "sqlite")), "http://127.0.0.1:18181")
    with pytest.raises(UserError, match="must not carry a user, password or query"):
        catalog_uri_for(new, "http://127.0.0.1:18181/?credential=abc")


def test_a_catalog_uri_makes_a_new_lake_iceberg_and_is_refused_on_a_hive_lake(tmp_path) -> None:
    assert table_format_for(Lake(str(tmp_path / "new")), "", "ingestion_time", "http://c:8181") == "iceberg"
    assert table_format_for(Lake(str(tmp_path / "new")), "", "ingestion_time") == "hive"
    (tmp_path / "hive" / "articles").mkdir(parents=True)
    with pytest.raises(UserError, match="--iceberg-catalog-uri is for Iceberg tables"):
        table_format_for(Lake(str(tmp_path / "hive")), "", "ingestion_time", "http://c:8181")


def test_s3_file_io_settings_come_from_the_lakes_environment() -> None:
    environ = {
        "AWS_ENDPOINT_URL": "http://generic:9000",
        "AWS_ENDPOINT_URL_S3": "http://s3-only:18333",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "HOME": "/root",
    }
    assert s3_properties(environ) == {
        "s3.endpoint": "http://s3-only:18333",
        "s3.access-key-id": "key",
        "s3.secret-access-key": "secret",
        "s3.region": "eu-west-1",
    }
    assert s3_properties({"AWS_ENDPOINT_URL": "http://generic:9000", "AWS_REGION": "us-east-1"}) == {
        "s3.endpoint": "http://generic:9000",
        "s3.region": "us-east-1",
    }
    assert s3_properties({}) == {}
