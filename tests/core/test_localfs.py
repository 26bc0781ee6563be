"""Hadoop's local file system as the Spark session has it (meterlake/jvm): files made,
permissions set and links read in the JVM, as Hadoop's own class does with processes."""

from __future__ import annotations

import stat

from meterlake.core.session import LOCAL_FS


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_local_file_system_sets_permissions_and_tells_links_apart(spark, tmp_path) -> None:
    jvm = spark._jvm
    hadoop = jvm.org.apache.hadoop.fs
    conf = spark._jsc.hadoopConfiguration()
    assert {k: conf.get(k.removeprefix("spark.hadoop.")) for k in LOCAL_FS} == LOCAL_FS
    fs = hadoop.FileSystem.get(jvm.java.net.URI("file:///"), conf)
    assert fs.getRawFileSystem().getClass().getName() == "meterlake.hadoop.NioRawLocalFileSystem"

    made = hadoop.Path(f"file://{tmp_path}/made")
    fs.create(made, True).close()
    assert _mode(tmp_path / "made") == 0o644  # Hadoop's default: 0666 less the umask 022
    fs.setPermission(made, hadoop.permission.FsPermission("640"))
    assert _mode(tmp_path / "made") == 0o640

    # Links and plain files read as Hadoop's own class reads them (which, without its
    # native library, runs `readlink` on the URI and sees no link), without a process.
    (tmp_path / "link").symlink_to(tmp_path / "made")
    hadoops = hadoop.RawLocalFileSystem()
    hadoops.initialize(jvm.java.net.URI("file:///"), conf)
    context = hadoop.FileContext.getLocalFSFileContext(conf)
    for name in ("link", "made"):
        path = hadoop.Path(f"file://{tmp_path}/{name}")
        ours, theirs = context.getFileLinkStatus(path), hadoops.getFileLinkStatus(path)
        assert [(s.isSymlink(), s.isDirectory(), s.getLen(), s.getPath().toString())
                for s in (ours, theirs)] == [(False, False, 0, f"file:{tmp_path}/{name}")] * 2

    # A checkpoint's write: a temporary file renamed over its name (FileContext).
    renamed = hadoop.Path(f"file://{tmp_path}/renamed")
    overwrite = spark.sparkContext._gateway.new_array(hadoop.Options.Rename, 1)
    overwrite[0] = hadoop.Options.Rename.OVERWRITE
    context.rename(made, renamed, overwrite)
    assert (tmp_path / "renamed").exists() and not (tmp_path / "made").exists()
