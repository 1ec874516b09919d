#!/usr/bin/env python3
"""A pass-through FUSE file system that fails on demand, for the lease journal's
disk-fault tests (Debian: python3-fusepy, fuse3).

  faultfs.py BACKING MOUNTPOINT

Every operation goes to BACKING. While BACKING/.fail-fsync exists, fsync and
fdatasync of files answer EIO (the data written stays in BACKING, as after a
disk that lost a write-back); while BACKING/.fail-write exists, writes answer
ENOSPC. The kernel's own FUSE path carries the errors to the server's
syscalls: nothing is preloaded into the server.
"""

import errno
import os
import sys

from fusepy import FUSE, FuseOSError, Operations


class Faulty(Operations):
    def __init__(self, root):
        self.root = root

    def _path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _failing(self, what):
        return os.path.exists(os.path.join(self.root, ".fail-" + what))

    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._path(path))
        except OSError as e:
            raise FuseOSError(e.errno)
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size",
                "st_atime", "st_mtime", "st_ctime")
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def mkdir(self, path, mode):
        os.mkdir(self._path(path), mode)

    def unlink(self, path):
        os.unlink(self._path(path))

    def rename(self, old, new):
        os.rename(self._path(old), self._path(new))

    def truncate(self, path, length, fh=None):
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._path(path), length)

    def chmod(self, path, mode):
        os.chmod(self._path(path), mode)

    def utimens(self, path, times=None):
        os.utime(self._path(path), times)

    def open(self, path, flags):
        return os.open(self._path(path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        if self._failing("write"):
            raise FuseOSError(errno.ENOSPC)
        return os.pwrite(fh, data, offset)

    def fsync(self, path, datasync, fh):
        if self._failing("fsync"):
            raise FuseOSError(errno.EIO)
        os.fsync(fh)

    def fsyncdir(self, path, datasync, fh):
        return 0

    def opendir(self, path):
        return 0

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)

    def statfs(self, path):
        st = os.statvfs(self._path(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}


if __name__ == "__main__":
    FUSE(Faulty(sys.argv[1]), sys.argv[2], foreground=True, nothreads=True)
