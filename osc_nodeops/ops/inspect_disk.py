"""Runbook S11: inspect a failed instance's disk, on its compute node.

The guide's six steps, in order: **suspend** the domain, **connect** the disk
(qemu-nbd), **mount** a partition, (inspect), **unmount**, **disconnect**,
**resume**.  If the last three are skipped nova cannot manage the instance any
more, so:

* a *journal* (``STATE_DIR/inspect-<uuid>.json``) is written atomically
  *before* each step, naming everything the step is about to put in place
  (prior domain state, socket, pid files, FUSE directory, loop device,
  mount point);
* teardown runs in ``finally`` (errors, Ctrl-C, SIGTERM, SIGHUP) and is
  *state based*: it looks at what is really there (``/proc/mounts``, loop
  backing files, pid files, the domain state) for every name the journal
  holds, so it undoes exactly what is left, whatever step a crash hit;
* after a SIGKILL or a crash, ``inspect-disk --cleanup`` (and the start of
  any later run) finds journals whose owner is gone (their ``flock`` is free)
  and runs the same teardown.

Connectors (how the disk becomes a block device):

``nbd``
    the kernel nbd module: a free ``/dev/nbdX`` (nova's rule: no
    ``/sys/block/nbdX/pid``; chosen under a lock, bounded retries), then
    ``qemu-nbd -c``; partitions are ``/dev/nbdXpN`` or loop devices at the
    partition's offset.
``fuse``
    no nbd module (containers, this project's CI): ``qemu-nbd`` serves the
    disk on a unix socket, ``nbdfuse`` exposes it as a file, and a loop
    device at the partition's offset (from ``sfdisk -J``) is mounted.

All root-only work goes through ``osc_nodeops.privileged``; this module only
decides.
"""

import configparser
import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
import xml.etree.ElementTree as ET

from osc_nodeops.privileged import blockdev
from osc_nodeops.privileged import libvirt_domain
from osc_nodeops.privileged import nbd
from osc_nodeops.privileged import proc

DEFAULT_LIBVIRT_URI = 'qemu:///system'
DEFAULT_INSTANCES_PATH = '/var/lib/nova/instances'
DEFAULT_STATE_DIR = '/var/lib/osc-nodeops/inspect'
DEFAULT_AUDIT_LOG = '/var/log/osc-nodeops/inspect-disk.log'
DEFAULT_NOVA_CONF = '/etc/nova/nova.conf'

STEPS = ('suspend', 'connect', 'mount', 'unmount', 'disconnect', 'resume')
CONNECTORS = ('auto', 'nbd', 'fuse')

# Test hook: ``OSC_NODEOPS_INSPECT_FAULT=after:mount`` makes the process
# SIGKILL itself right after that step (``before:STEP`` right after the
# journal names it and before it runs).  The functional tests use it to kill
# the command at each of the six steps deterministically.
FAULT_ENV = 'OSC_NODEOPS_INSPECT_FAULT'

# nova: instance_name_template 'instance-%08x'; anything usable as a file
# name component and nothing else.
_INSTANCE_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$')
_UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?'
                      r'[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$')

# Partition types that hold a Linux file system.
LINUX_PART_TYPES = ('83', '0fc63daf-8483-4772-8e79-3d69d8477de4',
                    '44479540-f297-41b2-9af7-d131d5f0458a',  # root x86
                    '4f68bce3-e8cd-4db1-96e7-fbcaf984b709',  # root x86-64
                    '933ac7e1-2eb4-4f13-b844-0e14e2aef915')  # /home
LINUX_FS = ('ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'jfs', 'reiserfs')


def mount_options(fstype, read_write=False):
    """Options that truly write nothing when read-only.

    A plain ``ro`` mount of ext3/ext4 still replays a dirty journal (it
    writes to the device); ``noload`` skips that.  XFS needs
    ``norecovery``, btrfs ``nologreplay``.  ``nodev,nosuid,noexec``: the
    guest's files are untrusted.
    """
    base = ['nodev', 'nosuid', 'noexec']
    if read_write:
        return ['rw'] + base
    extra = {'ext3': ['noload'], 'ext4': ['noload'], 'xfs': ['norecovery'],
             'btrfs': ['nologreplay']}.get(fstype, [])
    return ['ro'] + extra + base


class InspectError(Exception):
    """A bad input or a failed step; the message is one line."""


class Interrupted(BaseException):
    """SIGTERM/SIGHUP turned into an exception so that teardown runs."""


# ----------------------------------------------------------------- targets

@dataclasses.dataclass
class Target(object):
    server_id: str
    name: str
    instance_name: str
    host: str


def resolve_server(compute, name_or_id):
    """Server by name or ID (all projects): UUID, instance name, host."""
    from openstack import exceptions as sdk_exc
    try:
        server = compute.find_server(name_or_id, ignore_missing=True,
                                     all_projects=True)
    except sdk_exc.DuplicateResource:
        raise InspectError('more than one server is named %r; use its ID'
                           % name_or_id)
    if server is None:
        raise InspectError('no server %r' % name_or_id)
    server = compute.get_server(server.id)
    if not server.instance_name or not server.compute_host:
        raise InspectError(
            'server %s: the API did not return its host and instance name '
            '(OS-EXT-SRV-ATTR:*); this needs admin credentials' % server.id)
    return Target(server_id=server.id, name=server.name,
                  instance_name=server.instance_name,
                  host=server.compute_host)


def nova_conf_value(key, nova_conf=DEFAULT_NOVA_CONF, section='DEFAULT'):
    """One value of nova.conf ('' when the file or the key is missing)."""
    if not nova_conf or not os.path.exists(nova_conf):
        return ''
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(nova_conf)
        return parser.get(section, key, fallback='').strip()
    except configparser.Error:
        return ''


def local_host(override=None, nova_conf=DEFAULT_NOVA_CONF):
    """The name nova uses for this node.

    ``--host`` if given; else ``[DEFAULT] host`` of nova.conf; else the
    machine's hostname (nova's own default for ``host``).
    """
    return override or nova_conf_value('host', nova_conf) or \
        socket.gethostname()


def instances_path(override=None, nova_conf=DEFAULT_NOVA_CONF):
    """``--instances-path``, else nova.conf's, else nova's default."""
    return override or nova_conf_value('instances_path', nova_conf) or \
        DEFAULT_INSTANCES_PATH


def check_target(target, this_host):
    if target.host != this_host:
        raise InspectError(
            'server %s (%s) is on host %s, not on this node (%s); run this '
            'on %s (or pass --host if this node is named differently)' % (
                target.server_id, target.name, target.host, this_host,
                target.host))
    if not _INSTANCE_NAME_RE.match(target.instance_name or '') or \
            '..' in target.instance_name:
        raise InspectError('refusing instance name %r: not a plain file '
                           'name' % target.instance_name)


# ------------------------------------------------------------------- disks

@dataclasses.dataclass
class Disk(object):
    name: str        # file name: disk, disk.local, disk.eph0 ...
    path: str
    target: str      # vda, vdb
    fmt: str         # qcow2, raw


def domain_disks(xml_text):
    """File-backed disks of a domain XML, in order."""
    root = ET.fromstring(xml_text)
    disks = []
    for d in root.findall('./devices/disk'):
        if d.get('device', 'disk') != 'disk':
            continue
        source = d.find('source')
        path = source.get('file') if source is not None else None
        if not path:
            continue
        target = d.find('target')
        driver = d.find('driver')
        disks.append(Disk(name=os.path.basename(path), path=path,
                          target=target.get('dev') if target is not None
                          else '',
                          fmt=(driver.get('type') if driver is not None
                               else None) or 'raw'))
    return disks


def select_disk(disks, wanted, instances_path):
    """The disk called ``wanted`` (file name or target dev), checked.

    Its path must lie inside the instances directory (after resolving
    symlinks) and exist.
    """
    found = [d for d in disks if wanted in (d.name, d.target)]
    if not found:
        raise InspectError('the domain has no disk %r (it has: %s)' % (
            wanted, ', '.join('%s (%s)' % (d.name, d.target) for d in disks)
            or 'no file-backed disks'))
    disk = found[0]
    base = os.path.realpath(instances_path)
    real = os.path.realpath(disk.path)
    if os.path.commonpath([base, real]) != base or real == base:
        raise InspectError('disk path %s is outside the instances directory '
                           '%s; refusing' % (disk.path, instances_path))
    if not os.path.isfile(real):
        raise InspectError('disk %s is missing (%s)' % (disk.name, disk.path))
    if disk.fmt not in ('qcow2', 'raw'):
        raise InspectError('disk %s has format %r; only qcow2 and raw are '
                           'supported' % (disk.name, disk.fmt))
    return dataclasses.replace(disk, path=real)


# ----------------------------------------------------------------- journal

def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds')


def _write_atomic(path, data):
    tmp = '%s.tmp.%d' % (path, os.getpid())
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Journal(object):
    """What one session has in place, on disk before each step.

    The owner holds an exclusive ``flock`` on ``inspect-<uuid>.lock`` for
    the whole session; a journal whose lock can be taken is stale (its
    owner died) and gets cleaned up.
    """

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
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
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
        self.data['updated'] = _now()
        _write_atomic(self.path, self.data)

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


def list_journals(state_dir):
    if not os.path.isdir(state_dir):
        return []
    out = []
    for entry in sorted(os.listdir(state_dir)):
        m = re.match(r'^inspect-(.+)\.json$', entry)
        if m:
            out.append(m.group(1))
    return out


def _fault(when, step):
    """The test hook (``FAULT_ENV``): ``WHEN:STEP[:SIGNAL]``, default KILL."""
    spec = os.environ.get(FAULT_ENV, '')
    if not spec:
        return
    parts = spec.split(':')
    if parts[:2] == [when, step]:
        sig = parts[2] if len(parts) > 2 else 'KILL'
        os.kill(os.getpid(), getattr(signal, 'SIG' + sig))


# ----------------------------------------------------------- host probing

def mounted(path, mounts_file='/proc/mounts'):
    """True if ``path`` is a mount point now.

    Only the parent is resolved: the mount point itself may be a dead FUSE
    mount (``ENOTCONN``).
    """
    path = os.path.join(os.path.realpath(os.path.dirname(path)),
                        os.path.basename(path))
    with open(mounts_file) as f:
        for line in f:
            fields = line.split()
            if len(fields) > 1 and _unescape(fields[1]) == path:
                return True
    return False


def _unescape(field):
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), field)


def pid_alive(pid, expect=None):
    """True if ``pid`` runs and (if given) its cmdline contains ``expect``."""
    if not pid:
        return False
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            cmd = f.read().replace(b'\0', b' ').decode('utf-8', 'replace')
        with open('/proc/%d/stat' % pid) as f:
            st = f.read().rsplit(')', 1)[-1].split()
        if st and st[0] == 'Z':
            return False
    except (FileNotFoundError, ProcessLookupError):
        return False
    return expect is None or expect in cmd


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


def stop_pid(pid, expect, timeout=10.0):
    """SIGTERM, wait, SIGKILL: only a process whose cmdline has ``expect``."""
    if not pid_alive(pid, expect):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait(lambda: not pid_alive(pid, expect), timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait(lambda: not pid_alive(pid, expect), timeout)
    _reap(pid)
    return True


def _reap(pid):
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _wait(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# -------------------------------------------------------------- connectors

def nbd_module_loaded(sys_root='/sys'):
    return os.path.isdir(os.path.join(sys_root, 'module', 'nbd')) or \
        os.path.exists(os.path.join(sys_root, 'block', 'nbd0'))


def fuse_available(dev_fuse='/dev/fuse'):
    return os.path.exists(dev_fuse) and bool(proc.which('nbdfuse'))


def choose_connector(wanted, sys_root='/sys', dev_fuse='/dev/fuse'):
    if wanted == 'nbd':
        if not nbd_module_loaded(sys_root):
            raise InspectError('--connector nbd: the nbd kernel module is '
                               'not loaded (modprobe nbd max_part=16, or use '
                               '--connector fuse)')
        return 'nbd'
    if wanted == 'fuse':
        if not fuse_available(dev_fuse):
            raise InspectError('--connector fuse needs /dev/fuse and nbdfuse '
                               '(Debian package libnbd-bin)')
        return 'fuse'
    if nbd_module_loaded(sys_root):
        return 'nbd'
    if fuse_available(dev_fuse):
        return 'fuse'
    raise InspectError('no way to connect a disk here: no nbd kernel module '
                       'and no /dev/fuse + nbdfuse')


def free_nbd_devices(sys_root='/sys'):
    """nbd devices with no ``pid`` file (nova's rule), in numeric order."""
    block = os.path.join(sys_root, 'block')
    try:
        names = os.listdir(block)
    except FileNotFoundError:
        return []
    devs = sorted((n for n in names if re.match(r'^nbd\d+$', n)),
                  key=lambda n: int(n[3:]))
    return [d for d in devs
            if not os.path.exists(os.path.join(block, d, 'pid'))]


def allocate_nbd(path, fmt, read_only, sys_root='/sys', dev_root='/dev',
                 lock_dir='/run/lock', retries=5, wait_timeout=10.0,
                 connect=None):
    """Find a free /dev/nbdX and connect ``path`` to it (under a lock).

    Bounded: ``retries`` devices are tried (another process may take one
    between our check and qemu-nbd); after a connect the device must show
    its ``pid`` file within ``wait_timeout`` seconds.
    """
    connect = connect or nbd.qemu_nbd_connect
    os.makedirs(lock_dir, exist_ok=True)
    with open(os.path.join(lock_dir, 'osc-nodeops-nbd.lock'), 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tried = []
        for _ in range(retries):
            free = [d for d in free_nbd_devices(sys_root) if d not in tried]
            if not free:
                break
            name = free[0]
            tried.append(name)
            device = os.path.join(dev_root, name)
            try:
                connect(device, path, fmt, read_only)
            except proc.PrivilegedError:
                continue
            pid_file = os.path.join(sys_root, 'block', name, 'pid')
            if _wait(lambda: os.path.exists(pid_file), wait_timeout):
                return device
            with contextlib.suppress(proc.PrivilegedError):
                nbd.qemu_nbd_disconnect(device)
        if not tried:
            raise InspectError('no free nbd device (every /dev/nbdX is in '
                               'use)')
        raise InspectError('could not connect a free nbd device (tried %s)'
                           % ', '.join(tried))


# ------------------------------------------------------------ partitions

@dataclasses.dataclass
class Partition(object):
    number: int      # 0: the whole disk (no partition table)
    offset: int
    size: int
    type: str


def partitions(table, disk_size=None):
    """Partitions of an ``sfdisk -J`` table (None: the whole disk is one)."""
    if table is None:
        return [Partition(0, 0, disk_size or 0, '')]
    sector = int(table.get('sectorsize', 512))
    out = []
    for p in table.get('partitions', []):
        node = p.get('node', '')
        m = re.search(r'(\d+)$', node)
        number = int(m.group(1)) if m else len(out) + 1
        out.append(Partition(number, int(p['start']) * sector,
                             int(p['size']) * sector,
                             str(p.get('type', '')).lower()))
    return out


def choose_partition(parts, wanted=None):
    """``--partition N`` or the first partition with a Linux type."""
    if wanted is not None:
        for p in parts:
            if p.number == wanted:
                return p
        raise InspectError('no partition %d (the disk has: %s)' % (
            wanted, ', '.join(str(p.number) for p in parts) or 'none'))
    for p in parts:
        if p.number == 0 or p.type in LINUX_PART_TYPES:
            return p
    raise InspectError('no Linux partition found (partitions: %s); pick one '
                       'with --partition N' % ', '.join(
                           '%d type %s' % (p.number, p.type) for p in parts))


# ------------------------------------------------------------- the session

@dataclasses.dataclass
class Request(object):
    target: Target
    approved_by: str
    reason: str
    disk: str = 'disk'
    partition: int = None
    read_write: bool = False
    connector: str = 'auto'
    libvirt_uri: str = DEFAULT_LIBVIRT_URI
    instances_path: str = DEFAULT_INSTANCES_PATH
    state_dir: str = DEFAULT_STATE_DIR
    audit_log: str = DEFAULT_AUDIT_LOG
    action: str = 'list'
    action_args: tuple = ()
    step_timeout: float = 30.0


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
    """Append one JSON line to the audit log (0600, created if missing)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, 'a') as f:
        f.write(json.dumps(record, sort_keys=True) + '\n')
        f.flush()
        os.fsync(f.fileno())


class Session(object):
    """One inspect-disk run: preflight, the steps, teardown.

    ``open_libvirt`` (default ``privileged.libvirt_domain.open_connection``)
    is injectable: tests that want to watch the domain go paused and running
    again share one test:/// connection (the test driver keeps state per
    connection).
    """

    def __init__(self, req, events=None, open_libvirt=None, sys_root='/sys',
                 dev_fuse='/dev/fuse'):
        self.req = req
        self.events = events or (lambda msg: None)
        self.open_libvirt = open_libvirt or libvirt_domain.open_connection
        self.sys_root = sys_root
        self.dev_fuse = dev_fuse
        self.journal = Journal(req.state_dir, req.target.server_id)
        self.steps = []
        self.disk = None
        self.connector = None
        self.domain = None
        self.conn = None
        self.fstype = None
        self.partition = None

    # -- preflight: nothing changes before all of it passed ---------------

    def preflight(self):
        req = self.req
        if not proc.is_root():
            raise InspectError('inspect-disk must run as root on the compute '
                               'node (it suspends the domain and mounts the '
                               'disk)')
        if not (req.approved_by or '').strip() or \
                not (req.reason or '').strip():
            raise InspectError('--approved-by WHO and --reason TEXT are '
                               'required: viewing a user\'s data needs '
                               'approval first')
        try:
            self.conn = self.open_libvirt(req.libvirt_uri)
        except Exception as exc:
            raise InspectError('cannot open libvirt %s: %s' % (
                req.libvirt_uri, _one_line(exc)))
        self.domain = libvirt_domain.lookup(
            self.conn, uuid=req.target.server_id,
            name=req.target.instance_name)
        if self.domain is None:
            raise InspectError('no libvirt domain %s (UUID %s) at %s' % (
                req.target.instance_name, req.target.server_id,
                req.libvirt_uri))
        self.disk = select_disk(
            domain_disks(libvirt_domain.xml(self.domain)), req.disk,
            req.instances_path)
        self.connector = choose_connector(req.connector, self.sys_root,
                                          self.dev_fuse)
        if self.connector == 'nbd' and not free_nbd_devices(self.sys_root):
            raise InspectError('no free nbd device (every /dev/nbdX is in '
                               'use)')
        # Leftovers of earlier sessions first ("any later run").
        for leftover in cleanup(req.state_dir, self.open_libvirt,
                                events=self.events):
            self.events('cleanup of an earlier session: %s %s %s %s %s'
                        % leftover.row())
        if not self.journal.acquire():
            raise InspectError('another inspect-disk session is working on '
                               'server %s' % req.target.server_id)
        if self.journal.exists():
            self.journal.release()
            raise InspectError('an earlier session of server %s could not '
                               'be cleaned up; see inspect-disk --cleanup'
                               % req.target.server_id)
        try:
            audit(req.audit_log, self._audit_record('started'))
        except OSError as exc:
            self.journal.release()
            raise InspectError('cannot write the audit log %s: %s' % (
                req.audit_log, exc.strerror or exc))

    def _audit_record(self, event, **extra):
        req = self.req
        rec = {'time': _now(), 'event': event,
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
        result = None
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
            try:
                torn = teardown(self.journal, self.open_libvirt,
                                conn=self.conn, events=self.events)
                self.steps.extend(torn)
                failed = [s for s in torn if s.result == 'failed']
                with contextlib.suppress(OSError):
                    audit(self.req.audit_log, self._audit_record(
                        'finished', outcome=outcome,
                        teardown=[s.row() for s in torn]))
                if failed:
                    # The journal stays: --cleanup retries.
                    self.journal.release()
                    raise InspectError(
                        'teardown incomplete: %s; run openstack instance '
                        'inspect-disk --cleanup' % '; '.join(
                            '%s: %s' % (s.step, s.detail) for s in failed))
                else:
                    self.journal.remove()
                    self.journal.release()
            finally:
                _restore_signals(previous)

    @property
    def mountpoint(self):
        return os.path.join(self.journal.workdir, 'mnt')

    def _step(self, name, result, detail=''):
        self.steps.append(Step(name, result, detail))
        self.events('%s: %s%s' % (name, result,
                                  ' (%s)' % detail if detail else ''))

    def _setup(self):
        req = self.req
        j = self.journal
        workdir = j.workdir
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        j.record(version=1, server_id=req.target.server_id,
                 server_name=req.target.name,
                 instance_name=req.target.instance_name,
                 libvirt_uri=req.libvirt_uri, disk=self.disk.path,
                 workdir=workdir, started=_now(),
                 read_write=req.read_write)

        # 1. suspend
        st = libvirt_domain.state(self.domain)[0]
        prior = libvirt_domain.STATE_NAMES.get(st, str(st))
        j.record(suspend={'prior_state': prior, 'done': False})
        _fault('before', 'suspend')
        if st == libvirt_domain.RUNNING:
            try:
                libvirt_domain.suspend(self.domain)
            except Exception as exc:
                raise InspectError('suspend failed: %s' % _one_line(exc))
            j.record(suspend={'done': True})
            self._step('suspend', 'done', 'domain %s paused' %
                       req.target.instance_name)
        else:
            self._step('suspend', 'skipped', 'domain is %s' % prior)
        _fault('after', 'suspend')

        # 2. connect
        read_only = not req.read_write
        if self.connector == 'fuse':
            sock = os.path.join(workdir, 'nbd.sock')
            qpid = os.path.join(workdir, 'qemu-nbd.pid')
            fuse_dir = os.path.join(workdir, 'fuse')
            fpid = os.path.join(workdir, 'nbdfuse.pid')
            image = os.path.join(fuse_dir, 'disk')
            os.makedirs(fuse_dir, exist_ok=True)
            j.record(connect={'connector': 'fuse', 'socket': sock,
                              'qemu_pid_file': qpid, 'fuse_dir': fuse_dir,
                              'fuse_pid_file': fpid, 'image': image})
            _fault('before', 'connect')
            nbd.qemu_nbd_serve(sock, qpid, self.disk.path, self.disk.fmt,
                               read_only=read_only,
                               timeout=req.step_timeout)
            child = nbd.nbdfuse_start(fuse_dir, 'disk', sock, fpid,
                                      os.path.join(workdir, 'nbdfuse.log'),
                                      read_only=read_only)
            if not _wait(lambda: os.path.exists(image) and
                         mounted(fuse_dir), req.step_timeout):
                code = child.poll()
                raise InspectError('nbdfuse did not expose the disk within '
                                   '%d s%s' % (req.step_timeout,
                                               '' if code is None else
                                               ' (it exited %d)' % code))
            device = image
        else:
            j.record(connect={'connector': 'nbd'})
            _fault('before', 'connect')
            device = allocate_nbd(self.disk.path, self.disk.fmt, read_only,
                                  sys_root=self.sys_root,
                                  connect=self._nbd_connect_journaled)
        j.record(connect={'device': device})
        self._step('connect', 'done', '%s via %s%s' % (
            self.disk.name, self.connector,
            ' read-only' if read_only else ' READ-WRITE'))
        _fault('after', 'connect')

        # 3. mount (find the partition, a loop device at its offset, mount)
        table = blockdev.read_partition_table(device)
        size = os.path.getsize(device) if os.path.isfile(device) else 0
        self.partition = choose_partition(partitions(table, size),
                                          req.partition)
        part = self.partition
        node = '%sp%d' % (device, part.number)
        if self.connector == 'nbd' and part.number and os.path.exists(node):
            source = node
            j.record(loop={'device': None})
        else:
            j.record(loop={'backing': device, 'device': None})
            source = blockdev.loop_attach(device, part.offset, part.size,
                                          read_only=read_only)
            j.record(loop={'backing': device, 'device': source})
        self.fstype = blockdev.probe(source).get('TYPE')
        if not self.fstype:
            raise InspectError('partition %d holds no file system blkid '
                               'recognises' % part.number)
        if self.fstype not in LINUX_FS:
            raise InspectError('partition %d holds %s, not a Linux file '
                               'system; pick one with --partition N' % (
                                   part.number, self.fstype))
        os.makedirs(self.mountpoint, mode=0o700, exist_ok=True)
        j.record(mount={'mountpoint': self.mountpoint})
        _fault('before', 'mount')
        opts = mount_options(self.fstype, req.read_write)
        blockdev.mount(source, self.mountpoint, self.fstype, opts,
                       timeout=req.step_timeout)
        self._step('mount', 'done', 'partition %d (%s) on %s -o %s' % (
            part.number, self.fstype, self.mountpoint, ','.join(opts)))
        _fault('after', 'mount')

    def _nbd_connect_journaled(self, device, path, fmt, read_only):
        self.journal.record(connect={'device': device})
        return nbd.qemu_nbd_connect(device, path, fmt, read_only,
                                    timeout=self.req.step_timeout)


def _one_line(exc):
    return ' '.join(str(exc).split())[:300]


# ---------------------------------------------------------------- signals

def _raise_interrupted(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def _install_signal_handlers():
    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, _raise_interrupted)
        previous[signal.SIGINT] = signal.getsignal(signal.SIGINT)
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
        if not previous:
            return
    except ValueError:
        pass


# --------------------------------------------------------------- teardown

def teardown(journal, open_libvirt=None, conn=None, events=None):
    """Undo what the journal says may be in place: unmount, disconnect,
    resume, in that order.  Returns the ``Step`` rows.

    State based and idempotent: each name in the journal is checked
    against what is really there.  When the unmount fails on a read-write
    session the domain is left paused (a guest writing to a disk that is
    mounted read-write here would corrupt it) and the step says so.
    """
    events = events or (lambda msg: None)
    data = journal.data if journal.data else journal.load()
    steps = []

    def step(name, result, detail=''):
        s = Step(name, result, detail)
        steps.append(s)
        events('%s: %s%s' % (name, result, ' (%s)' % detail if detail
                             else ''))
        return s

    # 4. unmount
    _fault('before', 'unmount')
    mp = (data.get('mount') or {}).get('mountpoint')
    unmounted = True
    if mp and mounted(mp):
        try:
            _retry(lambda: blockdev.umount(mp), attempts=5)
            step('unmount', 'done', mp)
        except proc.PrivilegedError as exc:
            unmounted = False
            step('unmount', 'failed', _one_line(exc))
    elif mp:
        step('unmount', 'not needed', 'nothing mounted')
    _fault('after', 'unmount')

    # 5. disconnect
    _fault('before', 'disconnect')
    connect = data.get('connect') or {}
    loop = data.get('loop') or {}
    disconnected = unmounted and _disconnect(connect, loop, step)
    if not unmounted and (connect or loop):
        step('disconnect', 'skipped', 'the partition is still mounted')
    _fault('after', 'disconnect')

    # 6. resume
    _fault('before', 'resume')
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
    _fault('after', 'resume')

    workdir = data.get('workdir')
    if workdir and unmounted and disconnected is not False:
        _remove_workdir(workdir)
    return steps


def _retry(fn, attempts=5, delay=0.3):
    for n in range(attempts):
        try:
            return fn()
        except proc.PrivilegedError:
            if n == attempts - 1:
                raise
            time.sleep(delay * (n + 1))


def _loop_backing(device):
    name = os.path.basename(device)
    try:
        with open('/sys/block/%s/loop/backing_file' % name) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def loops_backed_by(backing, sys_root='/sys'):
    """Loop devices whose backing file is ``backing`` (from sysfs: no
    ``stat`` of the file, which may sit on a dead FUSE mount)."""
    block = os.path.join(sys_root, 'block')
    out = []
    for name in sorted(os.listdir(block)):
        if not name.startswith('loop'):
            continue
        try:
            with open(os.path.join(block, name, 'loop', 'backing_file')) as f:
                if f.read().strip() == backing:
                    out.append('/dev/' + name)
        except (FileNotFoundError, NotADirectoryError):
            continue
    return out


def _disconnect(connect, loop, step):
    ok = True
    done = []
    # Loop devices: the recorded one (if it still points at our image)
    # and any other with our image as backing file.
    backing = loop.get('backing') or connect.get('image')
    loops = []
    if loop.get('device') and backing and \
            _loop_backing(loop['device']) == backing:
        loops.append(loop['device'])
    if backing:
        for dev in loops_backed_by(backing):
            if dev not in loops:
                loops.append(dev)
    for dev in loops:
        try:
            _retry(lambda: blockdev.loop_detach(dev))
            done.append('loop %s' % dev)
        except proc.PrivilegedError as exc:
            ok = False
            step('disconnect', 'failed', _one_line(exc))
    if connect.get('connector') == 'fuse':
        fuse_dir = connect.get('fuse_dir')
        if fuse_dir and mounted(fuse_dir):
            try:
                _retry(lambda: blockdev.umount(fuse_dir))
                done.append('nbdfuse %s' % fuse_dir)
            except proc.PrivilegedError as exc:
                ok = False
                step('disconnect', 'failed', _one_line(exc))
        fpid = read_pid(connect.get('fuse_pid_file') or '')
        if fpid and ok:
            _wait(lambda: not pid_alive(fpid, 'nbdfuse'), 5.0)
            if stop_pid(fpid, 'nbdfuse'):
                done.append('nbdfuse pid %d' % fpid)
            _reap(fpid)
        qpid = read_pid(connect.get('qemu_pid_file') or '')
        if qpid and ok:
            # Without --persistent qemu-nbd leaves once nbdfuse is gone.
            _wait(lambda: not pid_alive(qpid, 'qemu-nbd'), 3.0)
            if stop_pid(qpid, 'qemu-nbd'):
                done.append('qemu-nbd pid %d' % qpid)
            else:
                done.append('qemu-nbd')
    elif connect.get('connector') == 'nbd' and connect.get('device'):
        dev = connect['device']
        pid_file = '/sys/block/%s/pid' % os.path.basename(dev)
        if os.path.exists(pid_file):
            try:
                nbd.qemu_nbd_disconnect(dev)
                done.append(dev)
            except proc.PrivilegedError as exc:
                ok = False
                step('disconnect', 'failed', _one_line(exc))
    if ok and (connect or loops):
        step('disconnect', 'done' if done else 'not needed',
             ', '.join(done) or 'nothing connected')
    return ok


def _resume(data, open_libvirt, conn, step):
    open_libvirt = open_libvirt or libvirt_domain.open_connection
    try:
        if conn is None:
            conn = open_libvirt(data['libvirt_uri'])
        dom = libvirt_domain.lookup(conn, uuid=data.get('server_id'),
                                    name=data.get('instance_name'))
        if dom is None:
            step('resume', 'failed', 'domain %s is gone from %s' % (
                data.get('instance_name'), data.get('libvirt_uri')))
            return
        st = libvirt_domain.state(dom)[0]
        if st == libvirt_domain.PAUSED:
            libvirt_domain.resume(dom)
            step('resume', 'done', 'domain %s running' %
                 data.get('instance_name'))
        elif st == libvirt_domain.RUNNING:
            step('resume', 'not needed', 'domain %s is running' %
                 data.get('instance_name'))
        else:
            step('resume', 'not needed', 'domain %s is %s' % (
                data.get('instance_name'),
                libvirt_domain.STATE_NAMES.get(st, st)))
    except Exception as exc:
        step('resume', 'failed', _one_line(exc))


def _remove_workdir(workdir):
    for name in ('nbd.sock', 'qemu-nbd.pid', 'nbdfuse.pid', 'nbdfuse.log'):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(workdir, name))
    for sub in ('mnt', 'fuse'):
        p = os.path.join(workdir, sub)
        if not mounted(p):
            with contextlib.suppress(FileNotFoundError, OSError):
                os.rmdir(p)
    with contextlib.suppress(FileNotFoundError, OSError):
        os.rmdir(workdir)


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
    rows = []
    for server_id in list_journals(state_dir):
        j = Journal(state_dir, server_id)
        data = j.load()
        if match and match not in (server_id, data.get('server_name'),
                                   data.get('instance_name')):
            continue
        name = data.get('instance_name', '')
        if not j.acquire():
            rows.append(CleanupRow(server_id, name, 'session', 'busy',
                                   'a live inspect-disk session (pid %s) '
                                   'holds it' % data.get('pid')))
            continue
        try:
            steps = teardown(j, open_libvirt, events=events)
            for s in steps:
                rows.append(CleanupRow(server_id, name, s.step, s.result,
                                       s.detail))
            if audit_log:
                with contextlib.suppress(OSError):
                    audit(audit_log, {
                        'time': _now(), 'event': 'cleanup',
                        'operator': operator_name(), 'server_id': server_id,
                        'instance_name': name, 'disk': data.get('disk'),
                        'teardown': [s.row() for s in steps]})
            if not any(s.result == 'failed' for s in steps):
                j.remove()
        finally:
            j.release()
    return rows


# ------------------------------------------------------- inspect actions

def guest_path(root, path, max_links=40, follow_last=False):
    """Host path of ``path`` inside the guest tree at ``root``.

    Symbolic links are followed *inside* the guest: an absolute link
    target restarts at ``root`` and ``..`` never climbs above it, as if
    chrooted, so a guest link cannot point us at the host's files.  The
    last component is followed only with ``follow_last``; without it,
    ``lstat`` the result.
    """
    root = os.path.realpath(root)
    parts = [p for p in path.split('/') if p not in ('', '.')]
    resolved = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == '..':
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if (parts or follow_last) and os.path.islink(candidate):
            links += 1
            if links > max_links:
                raise InspectError('too many symbolic links in %s' % path)
            target = os.readlink(candidate)
            if target.startswith('/'):
                resolved = []
            parts = [p for p in target.split('/') if p not in ('', '.')] + \
                parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


_TYPES = ((stat.S_ISDIR, 'directory'), (stat.S_ISREG, 'file'),
          (stat.S_ISLNK, 'link'), (stat.S_ISCHR, 'char device'),
          (stat.S_ISBLK, 'block device'), (stat.S_ISFIFO, 'fifo'),
          (stat.S_ISSOCK, 'socket'))

LIST_COLUMNS = ('Name', 'Type', 'Size', 'Mode', 'UID', 'GID', 'Modified',
                'Link Target')


def _describe(host_path, name):
    st = os.lstat(host_path)
    kind = next((k for f, k in _TYPES if f(st.st_mode)), 'other')
    target = os.readlink(host_path) if kind == 'link' else ''
    return (name, kind, st.st_size, stat.filemode(st.st_mode), st.st_uid,
            st.st_gid, datetime.datetime.fromtimestamp(
                st.st_mtime, datetime.timezone.utc).isoformat(
                    timespec='seconds'), target)


def list_path(root, path):
    """Rows describing ``path`` (its entries if it is a directory).

    Like ``ls``: a link is shown as a link unless the path ends in ``/``.
    """
    host = guest_path(root, path, follow_last=path.endswith('/'))
    if not os.path.lexists(host):
        raise InspectError('%s: no such file or directory in the guest'
                           % path)
    if os.path.isdir(host) and not os.path.islink(host):
        return [_describe(os.path.join(host, n), n)
                for n in sorted(os.listdir(host))]
    return [_describe(host, path)]


def cat_path(root, path, out):
    host = guest_path(root, path, follow_last=True)
    st = os.lstat(host) if os.path.lexists(host) else None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise InspectError('%s: not a regular file in the guest' % path)
    total = 0
    with open(host, 'rb') as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            out.write(chunk)
            total += len(chunk)
    out.flush()
    return total


COPY_COLUMNS = ('Path', 'Destination', 'Type', 'Bytes')


def copy_out(root, path, dest):
    """Copy a guest file or tree to ``dest`` on the host; never overwrite.

    ``dest`` must not exist, or be a directory (the copy goes inside).
    Links are copied as links (never followed), special files skipped.
    """
    import shutil
    src = guest_path(root, path)
    if not os.path.lexists(src):
        raise InspectError('%s: no such file or directory in the guest'
                           % path)
    if os.path.isdir(dest):
        dest = os.path.join(dest, os.path.basename(src.rstrip('/')) or
                            'root')
    if os.path.lexists(dest):
        raise InspectError('%s exists; not overwriting it' % dest)
    rows = []

    def one(s, d, rel):
        st = os.lstat(s)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(s), d)
            rows.append((rel, d, 'link', 0))
        elif stat.S_ISREG(st.st_mode):
            shutil.copy2(s, d, follow_symlinks=False)
            rows.append((rel, d, 'file', st.st_size))
        elif stat.S_ISDIR(st.st_mode):
            os.mkdir(d, 0o700)
            rows.append((rel, d, 'directory', 0))
            for n in sorted(os.listdir(s)):
                one(os.path.join(s, n), os.path.join(d, n),
                    rel.rstrip('/') + '/' + n)
            shutil.copystat(s, d, follow_symlinks=False)
        else:
            rows.append((rel, '', 'skipped (special file)', 0))

    one(src, dest, '/' + '/'.join(p for p in path.split('/') if p))
    return rows


def run_in(root, argv, env_extra=None):
    """Run ``argv`` with the mount point as cwd; SIGINT goes to it alone.

    Like ``system(3)``, we ignore SIGINT while the child runs (the
    terminal's Ctrl-C reaches the child, which decides), then restore it;
    teardown follows.
    """
    env = dict(os.environ, INSPECT_MOUNTPOINT=root)
    env.update(env_extra or {})
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        old = None
    try:
        child = subprocess.Popen(argv, cwd=root, env=env,
                                 preexec_fn=_default_sigint)
        try:
            return child.wait()
        except BaseException:
            # SIGTERM/SIGHUP reached us: the child must leave the mount
            # point before teardown can unmount it.
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            raise
        finally:
            # What the command started and left behind (``sh -c 'a; b'``
            # forks, ``cmd &`` detaches) would keep the mount busy.
            end_processes_using(root)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def processes_using(path, session=None):
    """PIDs of this session (default: ours) whose cwd, root or an open
    file is ``path`` or below it.  Other sessions (an operator's own shell
    that changed into the mount point) are never listed."""
    session = os.getsid(0) if session is None else session
    prefix = os.path.realpath(path).rstrip('/') + '/'
    found = []
    for name in os.listdir('/proc'):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        try:
            if os.getsid(pid) != session:
                continue
            links = ['/proc/%d/cwd' % pid, '/proc/%d/root' % pid]
            fd_dir = '/proc/%d/fd' % pid
            links += [os.path.join(fd_dir, fd) for fd in os.listdir(fd_dir)]
        except (OSError, ProcessLookupError):
            continue
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if (target + '/').startswith(prefix):
                found.append(pid)
                break
    return found


def end_processes_using(path, grace=5.0):
    """SIGTERM, then after ``grace`` seconds SIGKILL, the processes of our
    session still using ``path``; returns their PIDs."""
    pids = processes_using(path)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _alive(p)]
            time.sleep(0.05)
        if not pids:
            break
    return pids


def _alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[-1].split()[0] != 'Z'
    except (OSError, IndexError):
        return False


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def exec_command(root, command):
    """``--exec CMD``: ``sh -c CMD`` in the mount point; ``$1`` is it."""
    return run_in(root, ['/bin/sh', '-c', command, 'inspect-disk', root])


def shell(root):
    return run_in(root, [os.environ.get('SHELL') or '/bin/sh'])
