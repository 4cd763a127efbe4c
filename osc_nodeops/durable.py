"""One durable JSON writer, for every journal osc-nodeops keeps.

``write_json`` replaces a file's content so that a crash at any point
leaves either the old or the new content, never half of it: the data goes
to a fresh temporary file in the same directory (created with
``O_CREAT|O_EXCL|O_NOFOLLOW``, so a name planted there, a symbolic link to
a file we would truncate included, makes it fail instead), is fsync'ed,
renamed over the file, and the directory is fsync'ed.  The directory is
walked by descriptor (``safefile.split``): a symbolic link another user
planted on the way is refused, and the temporary file, the rename and the
fsync all act in the directory that was checked.
"""

import json
import os

from osc_nodeops import safefile


def write_json(path, data, mode=0o600):
    """Atomically and durably replace ``path`` with ``data`` as JSON.

    Raises ``OSError`` (``EEXIST`` when the temporary name is taken,
    ``ELOOP`` when it is a symbolic link) or ``safefile.Unsafe``; nothing
    is replaced then.
    """
    dfd, name = safefile.split(path)
    try:
        _write(dfd, name, data, mode)
    finally:
        os.close(dfd)


def _write(dfd, name, data, mode):
    tmp = '%s.tmp.%d' % (name, os.getpid())
    try:
        fd = _create(tmp, mode, dfd)
    except FileExistsError:
        # Left by a crash of a process with our pid, or planted: unlink
        # removes the name only (never a link's target); then try once more.
        os.unlink(tmp, dir_fd=dfd)
        fd = _create(tmp, mode, dfd)
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except FileNotFoundError:
            pass
        raise
    os.fsync(dfd)


def _create(name, mode, dfd):
    return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                   os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
