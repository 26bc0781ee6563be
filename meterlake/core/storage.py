"""The lake on object storage: the one set of settings (`[storage]`,
meterlake.core.config.StorageConf) that Spark's s3a, delta-rs and DuckDB all get.
Where a lake lives (a folder or `s3a://bucket/key`): meterlake.core.location.

- Spark: `spark.hadoop.fs.s3a.*` (`spark_settings`). Credentials never go into Spark's
  configuration (it is logged and shown in the UI): s3a reads them from the
  environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
- delta-rs, and DuckDB, which reads the tables through delta-rs: the object store
  options (`delta_options`), exported once into this process's environment
  (`export`) as the `AWS_*` variables delta-rs reads, so every table this process
  opens (and the report's notebook kernel it starts) uses them; the credentials are
  the environment's own.

Commits: delta-rs writes a commit with a conditional put (`If-None-Match: *`,
`conditional_put = "etag"`): two writers cannot both take version N. A store without
conditional writes (`conditional_put = "none"`) is safe for one writer only; the
checkpoint lock (meterlake.core.checkpoints) then holds one writer per lake on this
machine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from meterlake.core.config import StorageConf
from meterlake.core.location import ObjectPath

CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def signed_requests(conf: StorageConf, environ: Mapping[str, str] | None = None) -> bool:
    """Are requests signed with the environment's keys (else anonymous)?"""
    env = os.environ if environ is None else environ
    return conf.credentials == "environment" and all(env.get(v) for v in CREDENTIAL_VARIABLES)


def delta_options(conf: StorageConf, signed: bool | None = None) -> dict[str, str]:
    """delta-rs' object store options (no credentials: delta-rs reads those from the
    environment itself)."""
    signed = signed_requests(conf) if signed is None else signed
    options = {
        "aws_region": conf.region,
        "aws_virtual_hosted_style_request": "false" if conf.path_style else "true",
        "aws_connect_timeout": f"{conf.connect_timeout_s:g}s",
    }
    if conf.endpoint:
        options["aws_endpoint"] = conf.endpoint
        options["aws_allow_http"] = "true" if conf.endpoint.startswith("http://") else "false"
    if conf.conditional_put == "etag":
        options["aws_conditional_put"] = "etag"
    else:
        options["aws_s3_allow_unsafe_rename"] = "true"
    if not signed:
        options["aws_skip_signature"] = "true"
    return options


def export(conf: StorageConf) -> None:
    """Give delta-rs (and DuckDB through it, and child processes) the settings: the
    options of `delta_options` as the AWS_* variables delta-rs reads, in this
    process's environment. For a lake on an object store only."""
    for key, value in delta_options(conf).items():
        os.environ[key.upper()] = value


S3A_MIN_TIMEOUT_MS = 15_000  # s3a raises a lower connection timeout to this, warning
ANONYMOUS = "org.apache.hadoop.fs.s3a.AnonymousAWSCredentialsProvider"
FROM_ENVIRONMENT = "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"


def spark_settings(conf: StorageConf, signed: bool | None = None) -> dict[str, str]:
    """Hadoop's s3a settings for Spark (spark.hadoop.fs.s3a.*): endpoint, region, path
    style, where credentials come from (never the credentials themselves), and retries
    short enough that a store gone away is an error within a minute."""
    signed = signed_requests(conf) if signed is None else signed
    prefix = "spark.hadoop.fs.s3a."
    timeout_ms = str(max(int(conf.connect_timeout_s * 1000), S3A_MIN_TIMEOUT_MS))
    settings = {
        "endpoint.region": conf.region,
        "path.style.access": "true" if conf.path_style else "false",
        "aws.credentials.provider": FROM_ENVIRONMENT if signed else ANONYMOUS,
        "connection.establish.timeout": timeout_ms,
        "retry.limit": "3",
        "attempts.maximum": "3",
        # no directory marker objects, no bucket probe at start
        "bucket.probe": "0",
    }
    if conf.endpoint:
        settings["endpoint"] = conf.endpoint
        settings["connection.ssl.enabled"] = "true" if conf.endpoint.startswith(
            "https://") else "false"
    return {prefix + key: value for key, value in settings.items()}


# What the clients say when the store does not answer: s3a (AWS SDK v2) and delta-rs
# (object_store).
_UNREACHABLE = re.compile(
    r"Unable to execute HTTP request[^\n]*|Connect to \S+ failed[^\n]*"
    r"|Error performing \w+ \S+ in [^\n]*|error sending request[^\n]*"
    r"|Connection refused[^\n]*"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def unreachable(conf: StorageConf, text: str) -> str | None:
    """One line saying the store does not answer, if that is what an error's text
    (Spark's, delta-rs') says; None otherwise."""
    found = _UNREACHABLE.search(_ANSI.sub("", text))
    if not found:
        return None
    where = conf.endpoint or "AWS S3"
    detail = " ".join(found.group(0).split())[:200]
    return (f"the object store at {where} does not answer ({detail}); start it again "
            "(meterlake s3 start for the local one) and rerun")


def filesystem(conf: StorageConf) -> Any:
    """The store as a pyarrow file system, for the few things meterlake lists or reads
    there itself outside Spark and delta-rs (a checkpoint's offsets); the keys, when
    signed, from the environment as the AWS SDK reads them."""
    from pyarrow import fs  # type: ignore[import-untyped]

    endpoint = conf.endpoint.split("://", 1)
    return fs.S3FileSystem(
        anonymous=not signed_requests(conf),
        region=conf.region,
        scheme=endpoint[0] if len(endpoint) == 2 else "https",
        endpoint_override=endpoint[-1] if conf.endpoint else None,
        force_virtual_addressing=not conf.path_style,
        connect_timeout=conf.connect_timeout_s,
    )


def names_in(conf: StorageConf, folder: ObjectPath) -> list[str]:
    """The names of the objects directly in a folder of the store ([] when none)."""
    from pyarrow import fs

    selector = fs.FileSelector(f"{folder.bucket}/{folder.key}", allow_not_found=True)
    return [info.base_name for info in filesystem(conf).get_file_info(selector)]
