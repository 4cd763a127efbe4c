"""Root-side file steps: ownership, copies, directories."""

import errno
import hashlib
import os
import stat

_CHUNK = 1 << 20


def chown(path, uid, gid, follow_symlinks=False, dir_fd=None):
    os.chown(path, uid, gid, follow_symlinks=follow_symlinks, dir_fd=dir_fd)


def link_no_replace(src, dst, dir_fd=None):
    """Give ``src`` the name ``dst`` (both in ``dir_fd`` when given); fail
    (EEXIST) if ``dst`` exists.

    ``link`` never replaces an existing name, unlike ``rename``: the
    atomic "never overwrite" the runbook asks for.
    """
    os.link(src, dst, src_dir_fd=dir_fd, dst_dir_fd=dir_fd,
            follow_symlinks=False)


def rmdir(path):
    """Remove an empty directory (``OSError`` if it is not empty)."""
    os.rmdir(path)


def copy_data(src, dst, uid, gid, mode):
    """Copy the bytes of the regular file ``src`` to a new file ``dst``.

    Data only: no xattrs, no ACLs, no times.  ``src`` is opened with
    ``O_NOFOLLOW`` and must be a regular file; ``dst`` is created with
    ``O_CREAT|O_EXCL|O_NOFOLLOW`` (an existing name, a planted symbolic
    link included, fails with EEXIST/ELOOP and nothing is written), then
    given ``uid:gid`` and ``mode`` through its descriptor.  Returns the
    bytes copied.
    """
    sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(sfd).st_mode):
            raise OSError(errno.EINVAL, 'not a regular file', src)
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                      os.O_NOFOLLOW, 0o600)
        try:
            total = 0
            while True:
                chunk = os.read(sfd, _CHUNK)
                if not chunk:
                    break
                os.write(dfd, chunk)
                total += len(chunk)
            os.fchown(dfd, uid, gid)
            os.fchmod(dfd, mode)
            os.fsync(dfd)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)
    return total


def make_dir(path, dir_fd=None):
    """A new directory, 0700 (``mkdir`` never follows a link)."""
    os.mkdir(path, 0o700, dir_fd=dir_fd)


def open_dir_at(dir_fd, name):
    """The directory ``name`` of ``dir_fd``, opened with
    ``O_DIRECTORY|O_NOFOLLOW`` (a link swapped in fails: ELOOP/ENOTDIR)."""
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW |
                   os.O_CLOEXEC, dir_fd=dir_fd)


def set_fd_owner_mode(fd, uid, gid, mode, times_ns=None):
    """``fchown``, ``fchmod`` (after the chown, which clears setuid) and,
    with ``times_ns`` (atime, mtime), ``futimens``: by descriptor."""
    os.fchown(fd, uid, gid)
    os.fchmod(fd, mode)
    if times_ns is not None:
        os.utime(fd, ns=times_ns)


def set_dir_owner_mode(path, uid, gid, mode, times_ns=None):
    """:func:`set_fd_owner_mode` on a directory opened with
    ``O_DIRECTORY|O_NOFOLLOW`` (a link swapped in fails)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        set_fd_owner_mode(fd, uid, gid, mode, times_ns)
    finally:
        os.close(fd)


def sha256_fd(fd):
    """SHA-256 of an open file's content, read from its start."""
    h = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            break
        h.update(chunk)
    return h.hexdigest()


def symlink(target, path, uid, gid):
    """A new symbolic link (never replaces a name) owned by ``uid:gid``."""
    os.symlink(target, path)
    os.chown(path, uid, gid, follow_symlinks=False)


def copy_sparse(src, dst_fd):
    """Copy ``src`` into the open ``dst_fd``, skipping zero blocks (holes
    stay holes); return the SHA-256 of what was read."""
    h = hashlib.sha256()
    zero = bytes(_CHUNK)
    size = 0
    with open(src, 'rb') as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            h.update(chunk)
            if chunk == zero[:len(chunk)]:
                os.lseek(dst_fd, len(chunk), os.SEEK_CUR)
            else:
                os.write(dst_fd, chunk)
            size += len(chunk)
    os.ftruncate(dst_fd, size)
    return h.hexdigest()
