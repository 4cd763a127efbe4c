"""One inspect-disk session: preflight, the six steps, teardown, clean-up.

The guide's six steps, in order: **suspend** the domain, **connect** the
disk, **mount** a partition, (inspect), **unmount**, **disconnect**,
**resume**.  The journal names what a step is about to put in place before
it runs; teardown runs in ``finally`` (errors, Ctrl-C, SIGTERM, SIGHUP) and
is state based: it looks at what is really there for every name the
journal holds, so it undoes exactly what is left, whatever step a crash
hit.  After a SIGKILL, :func:`cleanup` (``--cleanup``, and the start of any
later run) finds journals whose owner is gone and runs the same teardown.
"""

import contextlib
import dataclasses
import errno
import json
import os
import signal

from osc_nodeops import errors
from osc_nodeops import safefile
from osc_nodeops.ops.inspect_disk import connectors
from osc_nodeops.ops.inspect_disk import host
from osc_nodeops.ops.inspect_disk import journal as journal_mod
from osc_nodeops.ops.inspect_disk import partition
from osc_nodeops.ops.inspect_disk import request as request_mod
from osc_nodeops.ops.inspect_disk.request import InspectError
from osc_nodeops.privileged import blockdev
from osc_nodeops.privileged import files
from osc_nodeops.privileged import libvirt_domain
from osc_nodeops.privileged import proc

STEPS = ('suspend', 'connect', 'mount', 'unmount', 'disconnect', 'resume')

# Tests set this to a callable(when, step), called 'before' and 'after' each
# of STEPS (tests/functional/inspect_fault_cli.py kills the process there).
step_hook = None


def _hook(when, step):
    if step_hook is not None:
        step_hook(when, step)


class Interrupted(BaseException):
    """SIGTERM/SIGHUP turned into an exception so that teardown runs."""


@dataclasses.dataclass
class Step(object):
    step: str
    result: str
    detail: str = ''

    def row(self):
        return (self.step, self.result, self.detail)


def operator_name():
    return os.environ.get('SUDO_USER') or os.environ.get('LOGNAME') or \
        os.environ.get('USER') or str(os.getuid())


def audit(path, record):
    """Append one JSON line to the audit log (0600, created if missing),
    opened by :mod:`osc_nodeops.safefile` (never through a link another
    user planted).  A refusal is an ``OSError`` (EPERM): the callers'
    handling of a log they cannot write applies to it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        fd = safefile.open_append(path, label='--audit-log %s' % path)
    except safefile.Unsafe as exc:
        raise OSError(errno.EPERM, str(exc))
    with os.fdopen(fd, 'a') as f:
        f.write(json.dumps(record, sort_keys=True) + '\n')
        f.flush()
        os.fsync(f.fileno())


class Session(object):
    """One inspect-disk run: preflight, the steps, teardown.

    ``open_libvirt`` (default ``privileged.libvirt_domain.open_connection``)
    is injectable: tests that want to watch the domain go paused and running
    again share one test:/// connection (the test driver keeps state per
    connection).  ``compute`` (an SDK compute proxy) resolves
    ``req.server`` when ``req.target`` is not given.
    """

    nbd_lock_dir = connectors.NBD_LOCK_DIR

    def __init__(self, req, events=None, open_libvirt=None, sys_root='/sys',
                 dev_fuse='/dev/fuse', compute=None):
        self.req = req
        self.events = events or (lambda msg: None)
        self.open_libvirt = open_libvirt or libvirt_domain.open_connection
        self.sys_root = sys_root
        self.dev_fuse = dev_fuse
        self.compute = compute
        self.journal = None
        self.steps = []
        self.disk = None
        self.connector = None
        self.domain = None
        self.conn = None
        self.fstype = None
        self.partition = None
        self.nbd_lock = None

    # -- preflight: nothing changes before all of it passed ---------------

    def preflight(self):
        request_mod.check(self.req)
        if self.req.target is None:
            self.req = request_mod.resolve(self.compute, self.req)
        req = self.req
        self.journal = journal_mod.Journal(req.state_dir,
                                           req.target.server_id)
        self._find_domain_and_disk()
        self.connector = connectors.choose(req.connector, self.sys_root,
                                           self.dev_fuse)
        if self.connector == 'nbd' and \
                not host.free_nbd_devices(self.sys_root):
            raise InspectError('no free nbd device (every /dev/nbdX is in '
                               'use)')
        # Leftovers of earlier sessions first ("any later run").
        for leftover in cleanup(req.state_dir, self.open_libvirt,
                                events=self.events):
            self.events('cleanup of an earlier session: %s %s %s %s %s'
                        % leftover.row())
        self._take_journal()

    def _find_domain_and_disk(self):
        req = self.req
        try:
            self.conn = self.open_libvirt(req.libvirt_uri)
        except Exception as exc:
            raise InspectError('cannot open libvirt %s: %s' % (
                req.libvirt_uri,
                errors.one_line(exc, cut='', style=errors.PLAIN)))
        self.domain = libvirt_domain.lookup(
            self.conn, uuid=req.target.server_id,
            name=req.target.instance_name)
        if self.domain is None:
            raise InspectError('no libvirt domain %s (UUID %s) at %s' % (
                req.target.instance_name, req.target.server_id,
                req.libvirt_uri))
        self.disk = request_mod.select_disk(
            request_mod.domain_disks(libvirt_domain.xml(self.domain)),
            req.disk, req.instances_path)

    def _take_journal(self):
        req = self.req
        if not self._journal().acquire():
            raise InspectError('another inspect-disk session is working on '
                               'server %s' % req.target.server_id)
        if self._journal().exists():
            self._journal().release()
            raise InspectError('an earlier session of server %s could not '
                               'be cleaned up; see inspect-disk --cleanup'
                               % req.target.server_id)
        try:
            audit(req.audit_log, self._audit_record('started'))
        except OSError as exc:
            self._journal().release()
            raise InspectError('cannot write the audit log %s: %s' % (
                req.audit_log, exc.strerror or exc))

    def _audit_record(self, event, **extra):
        req = self.req
        rec = {'time': journal_mod.now(), 'event': event,
               'approved_by': req.approved_by, 'reason': req.reason,
               'operator': operator_name(), 'host': req.target.host,
               'server_id': req.target.server_id,
               'server_name': req.target.name,
               'instance_name': req.target.instance_name,
               'disk': self.disk.path if self.disk else req.disk,
               'partition': self.partition.number if self.partition
               else req.partition,
               'mode': 'read-write' if req.read_write else 'read-only',
               'action': req.action, 'action_args': list(req.action_args),
               'pid': os.getpid()}
        rec.update(extra)
        return rec

    # -- the steps --------------------------------------------------------

    def run(self, inspect):
        """Preflight, the six steps around ``inspect(mountpoint)``.

        Returns ``(inspect_result, steps)``; teardown always runs; a
        teardown failure raises :class:`InspectError` after the rows are
        complete (``self.steps``).
        """
        self.preflight()
        outcome = 'failed'
        previous = _install_signal_handlers()
        try:
            self._setup()
            result = inspect(self.mountpoint)
            outcome = 'done'
            return result, self.steps
        except Interrupted as exc:
            outcome = 'interrupted (%s)' % exc
            raise
        except KeyboardInterrupt:
            outcome = 'interrupted (SIGINT)'
            raise
        finally:
            _ignore_signals()
            self._release_nbd_lock()
            try:
                self._teardown(outcome)
            finally:
                _restore_signals(previous)

    def _teardown(self, outcome):
        torn = teardown(self.journal, self.open_libvirt, conn=self.conn,
                        events=self.events)
        self.steps.extend(torn)
        failed = [s for s in torn if s.result == 'failed']
        with contextlib.suppress(OSError):
            audit(self.req.audit_log, self._audit_record(
                'finished', outcome=outcome,
                teardown=[s.row() for s in torn]))
        if failed:
            # The journal stays: --cleanup retries.
            self._journal().release()
            raise InspectError(
                'teardown incomplete: %s; run openstack instance '
                'inspect-disk --cleanup' % '; '.join(
                    '%s: %s' % (s.step, s.detail) for s in failed))
        self._journal().remove()
        self._journal().release()

    def _journal(self):
        """The session's journal (made by ``preflight``, before any step
        that uses it)."""
        if self.journal is None:
            raise InspectError('no journal: preflight() did not run')
        return self.journal

    def _disk(self):
        """The disk ``preflight`` chose."""
        if self.disk is None:
            raise InspectError('no disk: preflight() did not run')
        return self.disk

    @property
    def mountpoint(self):
        return os.path.join(self._journal().workdir, 'mnt')

    def _step(self, name, result, detail=''):
        self.steps.append(Step(name, result, detail))
        self.events('%s: %s%s' % (name, result,
                                  ' (%s)' % detail if detail else ''))

    def _setup(self):
        req = self.req
        workdir = self._journal().workdir
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        self._journal().record(
            version=1, server_id=req.target.server_id,
            server_name=req.target.name,
            instance_name=req.target.instance_name,
            libvirt_uri=req.libvirt_uri, disk=self._disk().path,
            workdir=workdir, started=journal_mod.now(),
            read_write=req.read_write)
        if self.connector == 'nbd':
            # Before the pause: waiting for the lock must not keep the
            # customer's domain paused.
            self.nbd_lock = connectors.AllocationLock(
                self.nbd_lock_dir, timeout=req.step_timeout).acquire()
        self._suspend()
        try:
            device = self._connect()
        finally:
            self._release_nbd_lock()
        self._mount(device)

    def _release_nbd_lock(self):
        if self.nbd_lock is not None:
            self.nbd_lock.release()
            self.nbd_lock = None

    def _suspend(self):
        st = libvirt_domain.state(self.domain)[0]
        prior = libvirt_domain.STATE_NAMES.get(st, str(st))
        self._journal().record(suspend={'prior_state': prior, 'done': False})
        _hook('before', 'suspend')
        if st == libvirt_domain.RUNNING:
            try:
                libvirt_domain.suspend(self.domain)
            except Exception as exc:
                raise InspectError('suspend failed: %s' % errors.one_line(
                    exc, cut='', style=errors.PLAIN))
            self._journal().record(suspend={'done': True})
            self._step('suspend', 'done', 'domain %s paused' %
                       self.req.target.instance_name)
        else:
            self._step('suspend', 'skipped', 'domain is %s' % prior)
        _hook('after', 'suspend')

    def _connect(self):
        read_only = not self.req.read_write
        conn = connectors.for_session(self.connector, self._journal().workdir,
                                      self.disk, self.sys_root,
                                      lock=self.nbd_lock)
        self._journal().record(connect=conn.names())
        _hook('before', 'connect')
        device = conn.connect(
            self.disk, read_only, self.req.step_timeout,
            lambda dev: self._journal().record(connect={'device': dev}))
        self._journal().record(connect=dict(conn.names(), device=device))
        self._step('connect', 'done', '%s via %s%s' % (
            self._disk().name, self.connector,
            ' read-only' if read_only else ' READ-WRITE'))
        _hook('after', 'connect')
        return device

    def _mount(self, device):
        req = self.req
        part = self.partition = partition.find(device, req.partition)
        source = partition.source_device(
            device, part, self.connector, not req.read_write,
            lambda **loop: self._journal().record(loop=loop))
        self.fstype = partition.file_system(source, part.number)
        os.makedirs(self.mountpoint, mode=0o700, exist_ok=True)
        self._journal().record(mount={'mountpoint': self.mountpoint})
        _hook('before', 'mount')
        opts = partition.mount_options(self.fstype, req.read_write)
        blockdev.mount(source, self.mountpoint, self.fstype, opts,
                       timeout=req.step_timeout)
        self._step('mount', 'done', 'partition %d (%s) on %s -o %s' % (
            part.number, self.fstype, self.mountpoint, ','.join(opts)))
        _hook('after', 'mount')


# ---------------------------------------------------------------- signals

def _raise_interrupted(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def _install_signal_handlers():
    """SIGTERM/SIGHUP raise :class:`Interrupted`, SIGINT KeyboardInterrupt.

    SIGINT explicitly: a process started with SIGINT ignored (``cmd &`` in
    a shell script) gets no KeyboardInterrupt handler from Python, and a
    SIGINT during the steps was silently lost (the run went on and exited
    0).  Within a session every one of these signals means: stop, tear
    down, exit non-zero.
    """
    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, _raise_interrupted)
        previous[signal.SIGINT] = signal.signal(signal.SIGINT,
                                                signal.default_int_handler)
    except ValueError:  # not the main thread (unit tests)
        return {}
    return previous


def _ignore_signals():
    """Teardown must not be cut short: its own steps are bounded."""
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
    except ValueError:
        pass


def _restore_signals(previous):
    try:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    except ValueError:
        pass


# --------------------------------------------------------------- teardown

class _Steps(list):
    """The teardown's rows, each also sent to ``events``."""

    def __init__(self, events):
        super().__init__()
        self.events = events

    def __call__(self, name, result, detail=''):
        s = Step(name, result, detail)
        self.append(s)
        self.events('%s: %s%s' % (name, result, ' (%s)' % detail if detail
                                  else ''))
        return s


def teardown(journal, open_libvirt=None, conn=None, events=None):
    """Undo what the journal says may be in place: unmount, disconnect,
    resume, in that order.  Returns the ``Step`` rows.

    State based and idempotent: each name in the journal is checked
    against what is really there.  When the unmount fails on a read-write
    session the domain is left paused (a guest writing to a disk that is
    mounted read-write here would corrupt it) and the step says so.
    """
    data = journal.data if journal.data else journal.load()
    step = _Steps(events or (lambda msg: None))

    _hook('before', 'unmount')
    mp = (data.get('mount') or {}).get('mountpoint')
    unmounted = _unmount(mp, step)
    _hook('after', 'unmount')

    _hook('before', 'disconnect')
    connect = data.get('connect') or {}
    loop = data.get('loop') or {}
    disconnected = unmounted and _disconnect(connect, loop, step)
    if not unmounted and (connect or loop):
        step('disconnect', 'skipped', 'the partition is still mounted')
    _hook('after', 'disconnect')

    _hook('before', 'resume')
    suspend = data.get('suspend') or {}
    if suspend.get('prior_state') == 'running':
        if not unmounted and data.get('read_write'):
            step('resume', 'failed', 'domain left PAUSED: its disk is still '
                 'mounted read-write here; unmount %s, then run '
                 'inspect-disk --cleanup' % mp)
        else:
            _resume(data, open_libvirt, conn, step)
    elif suspend:
        step('resume', 'not needed', 'domain was %s before'
             % suspend.get('prior_state'))
    _hook('after', 'resume')

    workdir = data.get('workdir')
    if workdir and unmounted and disconnected is not False:
        _remove_workdir(workdir)
    return list(step)


def _unmount(mp, step):
    if mp and host.mounted(mp):
        try:
            host.again_while_busy(lambda: blockdev.umount(mp))
            step('unmount', 'done', mp)
        except proc.PrivilegedError as exc:
            step('unmount', 'failed',
                 errors.one_line(exc, cut='', style=errors.PLAIN))
            return False
    elif mp:
        step('unmount', 'not needed', 'nothing mounted')
    return True


def _disconnect(connect, loop, step):
    def fail(message):
        step('disconnect', 'failed', message)

    ok, done = partition.detach_loops(loop, connect, fail)
    connector = connectors.from_record(connect)
    if ok and connector is not None:
        ok, more = connector.disconnect(fail)
        done += more
    if ok and (connect or done):
        step('disconnect', 'done' if done else 'not needed',
             ', '.join(done) or 'nothing connected')
    return ok


def _resume(data, open_libvirt, conn, step):
    open_libvirt = open_libvirt or libvirt_domain.open_connection
    name = data.get('instance_name')
    try:
        if conn is None:
            conn = open_libvirt(data['libvirt_uri'])
        dom = libvirt_domain.lookup(conn, uuid=data.get('server_id'),
                                    name=name)
        if dom is None:
            step('resume', 'failed', 'domain %s is gone from %s' % (
                name, data.get('libvirt_uri')))
            return
        st = libvirt_domain.state(dom)[0]
        if st == libvirt_domain.PAUSED:
            libvirt_domain.resume(dom)
            step('resume', 'done', 'domain %s running' % name)
        elif st == libvirt_domain.RUNNING:
            step('resume', 'not needed', 'domain %s is running' % name)
        else:
            step('resume', 'not needed', 'domain %s is %s' % (
                name, libvirt_domain.STATE_NAMES.get(st, st)))
    except Exception as exc:
        step('resume', 'failed',
             errors.one_line(exc, cut='', style=errors.PLAIN))


def _remove_workdir(workdir):
    for name in ('nbd.sock', 'qemu-nbd.pid', 'nbdfuse.pid', 'nbdfuse.log'):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(workdir, name))
    subs = ['mnt', 'fuse']
    with contextlib.suppress(OSError):
        # Empty roots of confined commands a kill left behind.
        subs += [n for n in os.listdir(workdir) if n.startswith('.confined-')]
    for sub in subs:
        p = os.path.join(workdir, sub)
        if not host.mounted(p):
            with contextlib.suppress(OSError):
                files.rmdir(p)
    with contextlib.suppress(OSError):
        files.rmdir(workdir)


# ---------------------------------------------------------------- cleanup

@dataclasses.dataclass
class CleanupRow(object):
    server_id: str
    instance_name: str
    step: str
    result: str
    detail: str = ''

    def row(self):
        return (self.server_id, self.instance_name, self.step, self.result,
                self.detail)


def cleanup(state_dir, open_libvirt=None, match=None, events=None,
            audit_log=None):
    """Undo what stale sessions left (their owner is gone).

    ``match`` limits it to one server (UUID, server name or instance
    name, as recorded in the journal; no API call is needed).  A live
    session is left alone and reported.  Returns ``CleanupRow`` s.
    """
    request_mod.require_root('inspect-disk --cleanup must run as root')
    rows = []
    for server_id in journal_mod.list_journals(state_dir):
        j = journal_mod.Journal(state_dir, server_id)
        data = j.load()
        if match and match not in (server_id, data.get('server_name'),
                                   data.get('instance_name')):
            continue
        rows += _clean_one(j, data, open_libvirt, events, audit_log)
    return rows


def _clean_one(j, data, open_libvirt, events, audit_log):
    server_id = j.server_id
    name = data.get('instance_name', '')
    if not j.acquire():
        return [CleanupRow(server_id, name, 'session', 'busy',
                           'a live inspect-disk session (pid %s) holds it'
                           % data.get('pid'))]
    try:
        steps = teardown(j, open_libvirt, events=events)
        if audit_log:
            with contextlib.suppress(OSError):
                audit(audit_log, {
                    'time': journal_mod.now(), 'event': 'cleanup',
                    'operator': operator_name(), 'server_id': server_id,
                    'instance_name': name, 'disk': data.get('disk'),
                    'teardown': [s.row() for s in steps]})
        if not any(s.result == 'failed' for s in steps):
            j.remove()
    finally:
        j.release()
    return [CleanupRow(server_id, name, s.step, s.result, s.detail)
            for s in steps]
