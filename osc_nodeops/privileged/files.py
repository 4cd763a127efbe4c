"""Root-side file steps: ownership, copies, directories."""

import hashlib
import os
import shutil

_CHUNK = 1 << 20


def chown(path, uid, gid, follow_symlinks=False):
    os.chown(path, uid, gid, follow_symlinks=follow_symlinks)


def link_no_replace(src, dst):
    """Give ``src`` the name ``dst``; fail (EEXIST) if ``dst`` exists.

    ``link`` never replaces an existing name, unlike ``rename``: the
    atomic "never overwrite" the runbook asks for.
    """
    os.link(src, dst, follow_symlinks=False)


def rmdir(path):
    """Remove an empty directory (``OSError`` if it is not empty)."""
    os.rmdir(path)


def copy2(src, dst):
    """``shutil.copy2`` without following a link at ``src``."""
    shutil.copy2(src, dst, follow_symlinks=False)


def copystat(src, dst):
    shutil.copystat(src, dst, follow_symlinks=False)


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
