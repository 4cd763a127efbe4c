"""How a disk file becomes a block device, and back.

As in nova's ``virt/disk/mount``: one interface (:class:`Connector`) with
paired :meth:`~Connector.connect` / :meth:`~Connector.disconnect`, and one
class per way of getting the device.  A connector is rebuilt from its
journal record (:func:`from_record`), so a later process (``--cleanup``)
disconnects what a killed one connected.

``nbd``
    the kernel nbd module: a free ``/dev/nbdX`` (nova's rule: no
    ``/sys/block/nbdX/pid``; chosen under a lock, bounded retries), then
    ``qemu-nbd -c``; partitions are ``/dev/nbdXpN`` or loop devices at the
    partition's offset.
``fuse``
    no nbd module (containers, this project's CI): ``qemu-nbd`` serves the
    disk on a unix socket, ``nbdfuse`` exposes it as a file, and a loop
    device at the partition's offset is mounted.
"""

import contextlib
import fcntl
import os
import stat

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import waiting
from osc_nodeops.ops.inspect_disk import host
from osc_nodeops.ops.inspect_disk.request import InspectError
from osc_nodeops.privileged import blockdev
from osc_nodeops.privileged import nbd
from osc_nodeops.privileged import proc


class Connector(object):
    """Connect a disk file as a block device; disconnect it again."""

    kind: str | None = None

    def __init__(self, record=None, sys_root='/sys'):
        self.record = dict(record or {})
        self.sys_root = sys_root

    def names(self):
        """What to journal before :meth:`connect` runs."""
        return dict(self.record, connector=self.kind)

    def connect(self, disk, read_only, timeout, journal_device):
        """Return the block device (or file) holding the disk.
        ``journal_device(device)`` records a device before it is used."""
        raise NotImplementedError

    def disconnect(self, fail):
        """Undo :meth:`connect` from the record; returns (ok, what was
        done); ``fail(message)`` reports each failure."""
        raise NotImplementedError


class FuseConnector(Connector):
    """``qemu-nbd -k SOCKET`` + ``nbdfuse``: the disk as a file."""

    kind = 'fuse'

    @classmethod
    def in_workdir(cls, workdir, sys_root='/sys'):
        fuse_dir = os.path.join(workdir, 'fuse')
        return cls({'connector': cls.kind,
                    'socket': os.path.join(workdir, 'nbd.sock'),
                    'qemu_pid_file': os.path.join(workdir, 'qemu-nbd.pid'),
                    'fuse_dir': fuse_dir,
                    'fuse_pid_file': os.path.join(workdir, 'nbdfuse.pid'),
                    'image': os.path.join(fuse_dir, 'disk'),
                    'log': os.path.join(workdir, 'nbdfuse.log')},
                   sys_root=sys_root)

    def names(self):
        return {k: v for k, v in self.record.items() if k != 'log'}

    def connect(self, disk, read_only, timeout, journal_device):
        r = self.record
        os.makedirs(r['fuse_dir'], exist_ok=True)
        nbd.qemu_nbd_serve(r['socket'], r['qemu_pid_file'], disk.path,
                           disk.fmt, read_only=read_only, timeout=timeout)
        child = nbd.nbdfuse_start(r['fuse_dir'], 'disk', r['socket'],
                                  r['fuse_pid_file'], r['log'],
                                  read_only=read_only)
        if not waiting.wait_until(lambda: os.path.exists(r['image']) and
                                  host.mounted(r['fuse_dir']), timeout,
                                  host.INTERVAL, last_look=True):
            code = child.poll()
            raise InspectError('nbdfuse did not expose the disk within '
                               '%s s%s' % (timeutil.seconds_text(timeout),
                                           '' if code is None else
                                           ' (it exited %d)' % code))
        return r['image']

    def disconnect(self, fail):
        r = self.record
        done = []
        fuse_dir = r.get('fuse_dir')
        if fuse_dir and host.mounted(fuse_dir):
            try:
                host.again_while_busy(lambda: blockdev.umount(fuse_dir))
                done.append('nbdfuse %s' % fuse_dir)
            except proc.PrivilegedError as exc:
                fail(errors.one_line(exc, cut='', style=errors.PLAIN))
                return False, done
        fpid = host.read_pid(r.get('fuse_pid_file') or '')
        if fpid:
            waiting.wait_until(lambda: not host.pid_alive(fpid, 'nbdfuse'),
                               5.0, host.INTERVAL, last_look=True)
            if host.stop_pid(fpid, 'nbdfuse'):
                done.append('nbdfuse pid %d' % fpid)
            proc.reap(fpid)
        qpid = host.read_pid(r.get('qemu_pid_file') or '')
        if qpid:
            # Without --persistent qemu-nbd leaves once nbdfuse is gone.
            waiting.wait_until(lambda: not host.pid_alive(qpid, 'qemu-nbd'),
                               3.0, host.INTERVAL, last_look=True)
            if host.stop_pid(qpid, 'qemu-nbd'):
                done.append('qemu-nbd pid %d' % qpid)
            else:
                done.append('qemu-nbd')
        return True, done


class NbdConnector(Connector):
    """``qemu-nbd -c /dev/nbdX``: only the device acquisition differs.

    The allocation lock (:class:`AllocationLock`) is taken by the session
    before the domain is paused and given here as ``lock``.
    """

    kind = 'nbd'
    lock = None

    def connect(self, disk, read_only, timeout, journal_device):
        def connect(device, path, fmt, ro):
            journal_device(device)
            return nbd.qemu_nbd_connect(device, path, fmt, ro,
                                        timeout=timeout)
        device = allocate_nbd(disk.path, disk.fmt, read_only,
                              sys_root=self.sys_root, connect=connect,
                              lock=self.lock)
        self.record.update(device=device,
                           pid=host.nbd_pid(device, self.sys_root))
        return device

    def disconnect(self, fail):
        dev = self.record.get('device')
        pid = host.nbd_pid(dev, self.sys_root) if dev else None
        if pid is None:
            return True, []
        if not self._ours(pid):
            # Freed after our crash and taken by another session since.
            return True, ['%s left alone: it serves another disk now (pid '
                          '%d)' % (dev, pid)]
        try:
            nbd.qemu_nbd_disconnect(dev)
        except proc.PrivilegedError as exc:
            fail(errors.one_line(exc, cut='', style=errors.PLAIN))
            return False, []
        return True, [dev]

    def _ours(self, pid):
        """The qemu-nbd serving the device is the one we started: its pid
        as journalled, else (killed before that was written) a qemu-nbd
        whose command line names our disk."""
        if self.record.get('pid'):
            return pid == self.record['pid']
        disk = self.record.get('disk')
        return bool(disk) and host.pid_alive(pid, 'qemu-nbd') and \
            host.pid_alive(pid, disk)


NBD_LOCK_DIR = '/run/osc-nodeops'


class AllocationLock(object):
    """The host-wide lock for choosing a free /dev/nbdX.

    In a directory only root can write (``/run/osc-nodeops``, 0700; a
    world-writable ``/run/lock`` let any local user hold the lock and keep
    a domain paused), and a bounded wait: ``timeout`` seconds, then a
    refusal naming the lock.
    """

    def __init__(self, lock_dir=NBD_LOCK_DIR, timeout=30.0):
        self.lock_dir = lock_dir
        self.path = os.path.join(lock_dir, 'nbd-allocation.lock')
        self.timeout = timeout
        self.fd = None

    def _check_dir(self):
        os.makedirs(self.lock_dir, mode=0o700, exist_ok=True)
        st = os.lstat(self.lock_dir)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (
                0, os.geteuid()) or st.st_mode & 0o022:
            raise InspectError(
                'refusing the nbd lock directory %s: it must be a directory '
                'owned by root and writable by no one else (it is %s, uid '
                '%d)' % (self.lock_dir, stat.filemode(st.st_mode),
                         st.st_uid))

    def acquire(self):
        self._check_dir()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                     0o600)

        def take():
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        if not waiting.wait_until(take, self.timeout, 0.1, last_look=True):
            os.close(fd)
            raise InspectError('the nbd allocation lock %s is held by '
                               'another process for more than %g s; '
                               'nothing was changed' % (self.path,
                                                        self.timeout))
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc):
        self.release()


CONNECTORS = {c.kind: c for c in (FuseConnector, NbdConnector)}


def from_record(record, sys_root='/sys'):
    """The connector a journal's ``connect`` record describes (or None)."""
    cls = CONNECTORS.get((record or {}).get('connector') or '')
    return cls(record, sys_root=sys_root) if cls else None


def for_session(kind, workdir, disk, sys_root='/sys', lock=None):
    """The connector a new session uses (``lock``: the nbd allocation
    lock it holds)."""
    if kind == 'fuse':
        return FuseConnector.in_workdir(workdir, sys_root)
    conn = NbdConnector({'connector': 'nbd', 'disk': disk.path},
                        sys_root=sys_root)
    conn.lock = lock
    return conn


def choose(wanted, sys_root='/sys', dev_fuse='/dev/fuse'):
    """``--connector``: 'nbd', 'fuse' or 'auto' (nbd if loaded)."""
    if wanted == 'nbd':
        if not host.nbd_module_loaded(sys_root):
            raise InspectError('--connector nbd: the nbd kernel module is '
                               'not loaded (modprobe nbd max_part=16, or use '
                               '--connector fuse)')
        return 'nbd'
    if wanted == 'fuse':
        if not host.fuse_available(dev_fuse):
            raise InspectError('--connector fuse needs /dev/fuse and nbdfuse '
                               '(Debian package libnbd-bin)')
        return 'fuse'
    if host.nbd_module_loaded(sys_root):
        return 'nbd'
    if host.fuse_available(dev_fuse):
        return 'fuse'
    raise InspectError('no way to connect a disk here: no nbd kernel module '
                       'and no /dev/fuse + nbdfuse')


class _Taken(Exception):
    """An nbd device that another process took first, or that did not
    show its ``pid`` file in time."""


def allocate_nbd(path, fmt, read_only, sys_root='/sys', dev_root='/dev',
                 lock_dir=NBD_LOCK_DIR, retries=5, wait_timeout=10.0,
                 connect=None, lock=None):
    """Find a free /dev/nbdX and connect ``path`` to it (under a lock).

    ``lock``: an :class:`AllocationLock` the caller holds already; without
    it one in ``lock_dir`` is taken (bounded wait) for the allocation.
    Bounded: ``retries`` devices are tried (another process may take one
    between our check and qemu-nbd); after a connect the device must show
    its ``pid`` file within ``wait_timeout`` seconds.
    """
    connect = connect or nbd.qemu_nbd_connect
    with (contextlib.nullcontext() if lock is not None and lock.fd
          is not None else AllocationLock(lock_dir)):
        tried: list = []

        def next_device():
            """The connected device; None: no free one left; _Taken: this
            one did not take (try the next one, at once)."""
            free = [d for d in host.free_nbd_devices(sys_root)
                    if d not in tried]
            if not free:
                return None
            name = free[0]
            tried.append(name)
            device = os.path.join(dev_root, name)
            try:
                connect(device, path, fmt, read_only)
            except proc.PrivilegedError:
                raise _Taken(name)
            pid_file = os.path.join(sys_root, 'block', name, 'pid')
            if waiting.wait_until(lambda: os.path.exists(pid_file),
                                  wait_timeout, host.INTERVAL,
                                  last_look=True):
                return device
            with contextlib.suppress(proc.PrivilegedError):
                nbd.qemu_nbd_disconnect(device)
            raise _Taken(name)

        try:
            device = calls.call_with_retry(
                next_device, attempts=retries, backoff=None,
                retry_if=lambda exc: isinstance(exc, _Taken))
        except _Taken:
            device = None
        if device is not None:
            return device
        if not tried:
            raise InspectError('no free nbd device (every /dev/nbdX is in '
                               'use)')
        raise InspectError('could not connect a free nbd device (tried %s)'
                           % ', '.join(tried))
