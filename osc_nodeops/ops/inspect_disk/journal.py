"""The journal of one inspect-disk session: what it has in place.

``STATE_DIR/inspect-<uuid>.json`` is written durably (``durable.write_json``)
*before* each step, naming everything the step is about to put in place.
The owner holds an exclusive ``flock`` on ``inspect-<uuid>.lock`` for the
whole session; a journal whose lock can be taken is stale (its owner died)
and gets cleaned up.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import re
import stat

from osc_nodeops import durable
from osc_nodeops.ops.inspect_disk.request import InspectError


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds')


class Journal(object):
    """What one session has in place, on disk before each step."""

    def __init__(self, state_dir, server_id):
        # Real and absolute: the names recorded must match what
        # /proc/mounts and the loop devices' backing_file say.
        self.state_dir = os.path.realpath(state_dir)
        self.server_id = server_id
        self.path = os.path.join(state_dir, 'inspect-%s.json' % server_id)
        self.lock_path = os.path.join(state_dir, 'inspect-%s.lock'
                                      % server_id)
        self.data = {}
        self._lock = None

    @property
    def workdir(self):
        return os.path.join(self.state_dir, self.server_id)

    def acquire(self):
        """Take the instance's lock; False if another live session has it."""
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        self._lock = fd
        return True

    def load(self):
        try:
            with open(self.path) as f:
                self.data = json.load(f)
        except FileNotFoundError:
            self.data = {}
        except ValueError:
            # A torn write cannot happen (atomic replace); a hand-edited
            # file can: keep what we can say about it.
            self.data = {'corrupt': True}
        return self.data

    def exists(self):
        return os.path.exists(self.path)

    def record(self, **updates):
        for key, value in updates.items():
            if isinstance(value, dict) and isinstance(self.data.get(key),
                                                      dict):
                self.data[key].update(value)
            else:
                self.data[key] = value
        self.data['pid'] = os.getpid()
        self.data['updated'] = now()
        durable.write_json(self.path, self.data)

    def remove(self):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def release(self):
        # The lock file stays: unlinking it would let a process that opened
        # the old inode and one that creates a new one both "hold" it.
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None


def check_state_dir(state_dir):
    """Refuse a state directory others could have written to.

    A journal names mount points, loop devices, pid files and a domain for
    root to unmount, detach, kill and resume: it is trusted only in a
    directory owned by root (or by us) that no one else can write.
    """
    st = os.stat(state_dir)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (0, os.geteuid()) \
            or st.st_mode & 0o022:
        raise InspectError(
            'refusing the state directory %s: it must be owned by root and '
            'writable by no one else (it is %s, uid %d); its journals are '
            'not trusted' % (state_dir, stat.filemode(st.st_mode),
                             st.st_uid))


def list_journals(state_dir):
    """Server IDs of the journals in ``state_dir`` (checked first)."""
    if not os.path.isdir(state_dir):
        return []
    check_state_dir(state_dir)
    out = []
    for entry in sorted(os.listdir(state_dir)):
        m = re.fullmatch(r'inspect-(.+)\.json', entry)
        if m:
            out.append(m.group(1))
    return out
