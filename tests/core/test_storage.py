"""Where a lake lives and the [storage] settings each client gets (no store needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterlake.core.config import StorageConf, load_config
from meterlake.core.errors import MeterlakeError
from meterlake.core.location import ObjectPath, location, on_object_store
from meterlake.core.session import spark_settings
from meterlake.core.storage import delta_options, signed_requests, unreachable
from meterlake.core.storage import spark_settings as s3a_settings

SECRET = "wJalrXUtnFEMI-not-a-real-secret"
KEYS = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET}


@pytest.mark.parametrize("given", ["s3://meterlake/demo", "s3a://meterlake/demo/", "S3://meterlake//demo"])
def test_s3_and_s3a_lakes_are_one_place_spelt_s3a(given):
    lake = location(given)
    assert lake == ObjectPath("meterlake", "demo")
    assert str(lake) == "s3a://meterlake/demo"
    assert on_object_store(lake) and on_object_store(str(lake))


def test_an_object_store_lake_joins_like_a_path():
    config = load_config(options={"lake.root": "s3://bucket/team/lake"})
    assert str(config.table_path("day_cost")) == "s3a://bucket/team/lake/gold/day_cost"
    assert str(config.checkpoint("silver")) == "s3a://bucket/team/lake/_checkpoints/silver"
    assert config.table_path("bronze").name == "bronze"
    assert config.table_path("bronze").parent == ObjectPath("bucket", "team/lake/bronze")
    assert str(ObjectPath("bucket") / "x") == "s3a://bucket/x"


def test_a_local_lake_stays_a_path():
    assert location("lake") == Path("lake")
    assert location("/tmp/x") == Path("/tmp/x")
    assert not on_object_store(Path("/tmp/x"))


@pytest.mark.parametrize(("given", "why"), [("gs://bucket/lake", "unknown scheme 'gs'"),
                                            ("s3:///lake", "no bucket")])
def test_a_lake_uri_meterlake_cannot_reach_is_one_error(given, why):
    with pytest.raises(MeterlakeError, match=why):
        location(given)


def test_delta_rs_gets_the_endpoint_and_conditional_put_but_no_credentials(monkeypatch):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    conf = StorageConf(endpoint="http://127.0.0.1:8333")
    assert signed_requests(conf)
    assert delta_options(conf) == {
        "aws_region": "us-east-1",
        "aws_virtual_hosted_style_request": "false",
        "aws_connect_timeout": "5s",
        "aws_endpoint": "http://127.0.0.1:8333",
        "aws_allow_http": "true",
        "aws_conditional_put": "etag",
    }


def test_without_keys_requests_go_unsigned_and_without_conditional_put_one_writer_is_assumed():
    conf = StorageConf(endpoint="", region="eu-west-1", path_style=False,
                       conditional_put="none")
    assert not signed_requests(conf, environ={})
    options = delta_options(conf, signed=False)
    assert "aws_endpoint" not in options and "aws_conditional_put" not in options
    assert options["aws_s3_allow_unsafe_rename"] == "true"
    assert options["aws_skip_signature"] == "true"
    assert options["aws_virtual_hosted_style_request"] == "true"
    assert not signed_requests(StorageConf(credentials="anonymous"), environ=KEYS)


def test_spark_names_the_credentials_provider_never_the_keys(monkeypatch):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    settings = spark_settings(load_config())
    s3a = {k: v for k, v in settings.items() if k.startswith("spark.hadoop.fs.s3a.")}
    assert s3a == s3a_settings(load_config().storage)
    assert s3a["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:8333"
    assert s3a["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert s3a["spark.hadoop.fs.s3a.aws.credentials.provider"].endswith(
        "EnvironmentVariableCredentialsProvider")
    assert not [v for v in settings.values() if SECRET in v or KEYS["AWS_ACCESS_KEY_ID"] in v]


def test_a_store_that_does_not_answer_is_named_in_one_line():
    conf = StorageConf(endpoint="http://127.0.0.1:8333")
    spark_text = ("[STREAM_FAILED] ... listObjects() on s3a://meterlake/x/_delta_log: "
                  "software.amazon.awssdk.core.exception.SdkClientException: Unable to "
                  "execute HTTP request: Connect to 127.0.0.1:8333 [/127.0.0.1] failed: "
                  "Connection refused (SDK Attempt Count: 4)\n\tat ...")
    delta_rs_text = ("Generic S3 error\n  \x1b[31m↳\x1b[0m Error performing GET "
                     "http://127.0.0.1:8333/meterlake?list-type=2 in 2.9s, after 10 retries")
    for text in (spark_text, delta_rs_text):
        line = unreachable(conf, text)
        assert line and "\n" not in line and "\x1b" not in line
        assert line.startswith("the object store at http://127.0.0.1:8333 does not answer (")
    assert unreachable(conf, "[DELTA_TABLE_NOT_FOUND] no table") is None
