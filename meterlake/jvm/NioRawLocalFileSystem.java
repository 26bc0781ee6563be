package meterlake.hadoop;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermissions;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's local file system, without a process per call.
 *
 * <p>Without Hadoop's native library, RawLocalFileSystem sets the permission of every file
 * it creates by running {@code chmod}, and tells whether a path is a symbolic link by
 * running {@code readlink}: about 130 processes per micro-batch of a plain Delta stream
 * (its checkpoint's offset and commit files). Java's own file API does both in the
 * process. Everything else is Hadoop's.
 */
public class NioRawLocalFileSystem extends RawLocalFileSystem {
  @Override
  public void setPermission(Path p, FsPermission permission) throws IOException {
    String bits = new FsPermission((short) (permission.toShort() & 0777)).toString();
    Files.setPosixFilePermissions(pathToFile(p).toPath(), PosixFilePermissions.fromString(bits));
  }

  @Override
  public FileStatus getFileLinkStatus(Path f) throws IOException {
    if (Files.isSymbolicLink(pathToFile(f).toPath())) {
      return super.getFileLinkStatus(f);
    }
    return getFileStatus(f);
  }
}
