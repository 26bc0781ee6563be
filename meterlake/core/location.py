"""Where a lake lives: a local folder (a `Path`) or a folder on an S3-compatible
store (an `ObjectPath`, `s3a://bucket/key`; `s3://` is read as the same place).

Spark needs the `s3a` scheme (Hadoop's S3A file system); delta-rs takes either, so
the lake is spelt `s3a://` everywhere once read. How to reach the store:
meterlake.core.storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from meterlake.core.errors import MeterlakeError

SCHEMES = ("s3a", "s3")  # s3a first: how the lake is spelt once read


@dataclass(frozen=True)
class ObjectPath:
    """A folder or file on an object store, `s3a://bucket/key`: joined with `/` like a
    Path, printed as its URI. No I/O: that goes through delta-rs or Spark."""

    bucket: str
    key: str = ""

    def __truediv__(self, part: str | Path) -> ObjectPath:
        tail = str(part).strip("/")
        if not tail:
            return self
        return ObjectPath(self.bucket, f"{self.key}/{tail}" if self.key else tail)

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(self.bucket, self.key.rsplit("/", 1)[0] if "/" in self.key else "")

    def __str__(self) -> str:
        return f"s3a://{self.bucket}/{self.key}" if self.key else f"s3a://{self.bucket}"


Location: TypeAlias = Path | ObjectPath


def location(text: str | Path) -> Location:
    """A lake (or table) given as text: `s3://bucket/key` or `s3a://bucket/key` on an
    object store, anything else a local path. Another URI scheme is an error."""
    raw = str(text)
    scheme, sep, rest = raw.partition("://")
    if not sep:
        return Path(raw)
    if scheme.lower() not in SCHEMES:
        raise MeterlakeError(
            f"lake {raw!r}: unknown scheme {scheme!r}; a local folder, s3://bucket/path "
            "or s3a://bucket/path"
        )
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise MeterlakeError(f"lake {raw!r}: no bucket; expected s3://bucket/path")
    return ObjectPath(bucket, key.strip("/"))


def on_object_store(where: object) -> bool:
    return isinstance(where, ObjectPath) or str(where).split("://", 1)[0] in SCHEMES
