"""One durable JSON writer, for every journal osc-nodeops keeps.

``write_json`` replaces a file's content so that a crash at any point
leaves either the old or the new content, never half of it: the data goes
to a fresh temporary file in the same directory (created with
``O_CREAT|O_EXCL|O_NOFOLLOW``, so a name planted there, a symbolic link to
a file we would truncate included, makes it fail instead), is fsync'ed,
renamed over the file, and the directory is fsync'ed.
"""

import json
import os


def write_json(path, data, mode=0o600):
    """Atomically and durably replace ``path`` with ``data`` as JSON.

    Raises ``OSError`` (``EEXIST`` when the temporary name is taken,
    ``ELOOP`` when it is a symbolic link); nothing is replaced then.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = '%s.tmp.%d' % (path, os.getpid())
    try:
        fd = _create(tmp, mode)
    except FileExistsError:
        # Left by a crash of a process with our pid, or planted: unlink
        # removes the name only (never a link's target); then try once more.
        os.unlink(tmp)
        fd = _create(tmp, mode)
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _create(path, mode):
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                   os.O_NOFOLLOW, mode)
