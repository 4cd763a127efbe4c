"""Runbook S5 and the local half of S8, on the compute node itself.

S5: stop nova-compute and keep configuration management (Puppet) from
starting it again; undo both after maintenance.

* systemd (``/run/systemd/system`` exists, ``systemctl`` found):
  ``systemctl stop`` + ``systemctl mask`` (a masked unit cannot be started,
  by Puppet or anyone); ``unmask`` + ``start`` to undo.
* init files, as the guide does it: stop the service through its init
  system, then move ``/etc/init/nova-compute.conf`` (upstart) and
  ``/etc/init.d/nova-compute`` (SysV) to a holding directory; move them back
  and start to undo.  Nothing is ever replaced: a file already at the
  destination stops the run.
* anything else: refuse, saying what was looked for.  Guessing (killing a
  process that a supervisor would restart at once) is worse than a clear
  "do it by hand".

S8 (local): whether the service's process runs, since when, and whether
its log has a "Connected to AMQP server" line newer than the process start.
"""

import dataclasses
import datetime
import os
import re
import socket
import struct

from osc_nodeops import errors
from osc_nodeops.ops import runtime
from osc_nodeops.privileged import proc
from osc_nodeops.privileged import service as priv

DEFAULT_SERVICE = 'nova-compute'
DEFAULT_HOLD_DIR = '/var/lib/osc-nodeops/held-init-files'
DEFAULT_LOG_FILE = '/var/log/nova/nova-compute.log'

PLANNED = 'planned'
DONE = 'done'
NOT_NEEDED = 'not needed'
FAILED = 'failed'

COLUMNS = ('Step', 'Command', 'Result', 'Detail')


class ServiceError(errors.Refused):
    """Refusal; one line, nothing changed."""


class NotAServiceName(errors.UsageError, ServiceError):
    """``--service`` is no unit or init script name: a usage error (exit
    2), judged before anything is looked at or changed."""


_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9@_.-]*')


@dataclasses.dataclass
class Report(runtime.Report):
    kind: str
    rows: list

    @property
    def ok(self):
        return not any(r.result == FAILED for r in self.rows)


def run(direction, service=DEFAULT_SERVICE, dry_run=False, events=None,
        layout=None):
    """``compute node stop-service|start-service``: plan, then (unless
    ``dry_run``, and only as root) execute; returns a :class:`Report`."""
    events = events or (lambda msg: None)
    _check_name(service)
    kind, rows = plan(direction, service, layout)
    events('%s is managed by %s' % (service, kind))
    if not dry_run:
        if not proc.is_root():
            raise ServiceError('%s-service must run as root' % direction)
        execute(rows, service, layout)
    return Report(kind, rows)


@dataclasses.dataclass
class Row(object):
    step: str
    command: str
    result: str = PLANNED
    detail: str = ''

    def row(self):
        return (self.step, self.command, self.result, self.detail)


@dataclasses.dataclass
class Layout(object):
    """Where to look; every path under ``root`` (tests use a temp dir)."""
    root: str = '/'
    hold_dir: str = DEFAULT_HOLD_DIR

    def path(self, p):
        return os.path.join(self.root, p.lstrip('/'))

    @property
    def systemd(self):
        return os.path.isdir(self.path('/run/systemd/system'))

    def upstart_conf(self, service):
        return self.path('/etc/init/%s.conf' % service)

    def sysv_script(self, service):
        return self.path('/etc/init.d/%s' % service)

    def held(self, src):
        return os.path.join(self.path(self.hold_dir), src.strip('/')
                            .replace('/', '_'))


def _check_name(service):
    """A unit or init script name: no path ('..', '/'), no option ('-h')."""
    if not _NAME.fullmatch(service or '') or '..' in service:
        raise NotAServiceName('not a service name: %r' % service)


def detect(service, layout):
    """'systemd', 'init-files' or a ServiceError saying why neither."""
    _check_name(service)
    if layout.systemd:
        if not proc.which('systemctl'):
            raise ServiceError('systemd runs here but systemctl is missing')
        return 'systemd'
    files = [layout.upstart_conf(service), layout.sysv_script(service)]
    if any(os.path.exists(f) or os.path.exists(layout.held(f))
           for f in files):
        return 'init-files'
    raise ServiceError(
        'cannot tell how %s is managed on this node: no systemd '
        '(/run/systemd/system), no %s, no %s, and no files held in %s; '
        'stop it by hand' % (service, files[0], files[1],
                             layout.path(layout.hold_dir)))


def _systemctl_state(verb, service, runner):
    res = runner('is-%s' % verb, service, check=False)
    return (res.stdout or '').strip()


def plan(direction, service=DEFAULT_SERVICE, layout=None,
         systemctl=None):
    """The rows to stop (``direction='stop'``) or start the service.

    ``systemctl`` (default ``privileged.service.systemctl``) is the runner;
    unit tests give a mock.  Nothing changes here: it only asks.
    """
    layout = layout or Layout()
    systemctl = systemctl or priv.systemctl
    kind = detect(service, layout)
    rows = []
    if kind == 'systemd':
        active = _systemctl_state('active', service, systemctl)
        enabled = _systemctl_state('enabled', service, systemctl)
        if direction == 'stop':
            rows.append(Row('stop', 'systemctl stop %s' % service,
                            PLANNED if active in ('active', 'activating',
                                                  'reloading')
                            else NOT_NEEDED, 'is %s' % (active or '?')))
            rows.append(Row('mask', 'systemctl mask %s' % service,
                            NOT_NEEDED if enabled.startswith('masked')
                            else PLANNED, 'is %s' % (enabled or '?')))
        else:
            rows.append(Row('unmask', 'systemctl unmask %s' % service,
                            PLANNED if enabled.startswith('masked')
                            else NOT_NEEDED, 'is %s' % (enabled or '?')))
            rows.append(Row('start', 'systemctl start %s' % service,
                            NOT_NEEDED if active == 'active' else PLANNED,
                            'is %s' % (active or '?')))
        return kind, rows

    upstart = layout.upstart_conf(service)
    sysv = layout.sysv_script(service)
    if direction == 'stop':
        if os.path.exists(sysv):
            rows.append(Row('stop', '%s stop' % sysv))
        elif os.path.exists(upstart):
            rows.append(Row('stop', 'initctl stop %s' % service))
        else:
            rows.append(Row('stop', '%s stop' % sysv, NOT_NEEDED,
                            'init files already held away'))
        for f in (upstart, sysv):
            if os.path.exists(f):
                held = layout.held(f)
                if os.path.lexists(held):
                    raise ServiceError('%s exists already; not replacing it '
                                       '(was it held away before?)' % held)
                rows.append(Row('hold', 'mv %s %s' % (f, held)))
            elif os.path.exists(layout.held(f)):
                rows.append(Row('hold', 'mv %s %s' % (f, layout.held(f)),
                                NOT_NEEDED, 'already held'))
    else:
        for f in (upstart, sysv):
            held = layout.held(f)
            if os.path.exists(held):
                if os.path.lexists(f):
                    raise ServiceError('%s exists and %s is held too; '
                                       'not replacing it' % (f, held))
                rows.append(Row('restore', 'mv %s %s' % (held, f)))
            elif os.path.exists(f):
                rows.append(Row('restore', 'mv %s %s' % (held, f),
                                NOT_NEEDED, 'in place'))
        if os.path.exists(sysv) or os.path.exists(layout.held(sysv)):
            rows.append(Row('start', '%s start' % sysv))
        else:
            rows.append(Row('start', 'initctl start %s' % service))
    return kind, rows


def execute(rows, service=DEFAULT_SERVICE, layout=None, systemctl=None,
            init_script=None, move=None, initctl=None):
    """Run the planned rows in order; stop at the first failure."""
    layout = layout or Layout()
    systemctl = systemctl or priv.systemctl
    init_script = init_script or priv.init_script
    move = move or priv.move
    initctl = initctl or priv.initctl
    for r in rows:
        if r.result != PLANNED:
            continue
        try:
            verb, _, rest = r.command.partition(' ')
            if verb == 'systemctl':
                sub, _, unit = rest.partition(' ')
                systemctl(sub, unit)
            elif verb == 'mv':
                src, dst = rest.split(' ', 1)
                move(src, dst)
            elif verb == 'initctl':
                sub, _, unit = rest.partition(' ')
                initctl(sub, unit)
            else:
                init_script(verb, rest)
            r.result = DONE
        except (proc.PrivilegedError, OSError) as exc:
            r.result = FAILED
            r.detail = errors.one_line(exc, cut='', style=errors.PLAIN)
            break
    return rows


# ------------------------------------------------------------- S8 local

def _boot_time(proc_root):
    with open(os.path.join(proc_root, 'stat')) as f:
        for line in f:
            if line.startswith('btime '):
                return int(line.split()[1])
    return 0


def find_processes(service=DEFAULT_SERVICE, proc_root='/proc',
                   match=None):
    """Running processes of ``service``: [(pid, start datetime, cmdline)].

    A process matches when one of its first two argv elements is named
    ``service`` (``/usr/bin/nova-compute`` or ``python3 .../nova-compute``)
    and, if ``match`` is given, its command line contains it.
    """
    hz = os.sysconf('SC_CLK_TCK')
    btime = _boot_time(proc_root)
    out = []
    for entry in os.listdir(proc_root):
        if not entry.isdigit():
            continue
        base = os.path.join(proc_root, entry)
        try:
            with open(os.path.join(base, 'cmdline'), 'rb') as f:
                argv = [a.decode('utf-8', 'replace')
                        for a in f.read().split(b'\0') if a]
            with open(os.path.join(base, 'stat')) as f:
                fields = f.read().rsplit(')', 1)[-1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if not argv or not fields or fields[0] == 'Z':
            continue
        if not any(os.path.basename(a) == service for a in argv[:2]):
            continue
        cmdline = ' '.join(argv)
        if match and match not in cmdline:
            continue
        start = btime + int(fields[19]) / hz
        out.append((int(entry), datetime.datetime.fromtimestamp(
            start, datetime.timezone.utc), cmdline))
    return sorted(out, key=lambda p: p[1])


def amqp_connections(pid, port=5672, proc_root='/proc'):
    """Established TCP connections of ``pid`` to remote ``port``.

    Matches the socket inodes of ``/proc/PID/fd`` with
    ``/proc/PID/net/tcp{,6}``; returns ["ADDR:PORT", ...].  A running
    nova-compute keeps its AMQP connections open, so this answers S8 even
    when the log has no "Connected" line.
    """
    base = os.path.join(proc_root, str(pid))
    inodes = set()
    try:
        for fd in os.listdir(os.path.join(base, 'fd')):
            try:
                link = os.readlink(os.path.join(base, 'fd', fd))
            except OSError:
                continue
            if link.startswith('socket:['):
                inodes.add(link[8:-1])
    except OSError:
        return []
    out = []
    for table in ('tcp', 'tcp6'):
        try:
            with open(os.path.join(base, 'net', table)) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != '01':  # ESTABLISHED
                continue
            addr, _, rport = fields[2].partition(':')
            if int(rport, 16) != port or fields[9] not in inodes:
                continue
            out.append('%s:%d' % (_addr(addr), port))
    return sorted(out)


def _addr(hexaddr):
    if len(hexaddr) == 8:
        return socket.inet_ntop(socket.AF_INET,
                                struct.pack('<I', int(hexaddr, 16)))
    words = [struct.pack('<I', int(hexaddr[i:i + 8], 16))
             for i in range(0, 32, 8)]
    return socket.inet_ntop(socket.AF_INET6, b''.join(words))


_TS = re.compile(r'^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(\.\d+)?')
AMQP_MARKERS = ('Connected to AMQP server', 'Reconnected to AMQP server')


def last_amqp_line(log_file, tail_bytes=8 << 20):
    """(timestamp, line) of the last AMQP-connected line, or (None, None).

    oslo.log writes local time; the result is an aware datetime in the
    local zone.
    """
    with open(log_file, 'rb') as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - tail_bytes))
        data = f.read().decode('utf-8', 'replace')
    for line in reversed(data.splitlines()):
        if any(m in line for m in AMQP_MARKERS):
            m = _TS.match(line)
            if not m:
                continue
            ts = datetime.datetime.strptime(m.group(1).replace('T', ' '),
                                            '%Y-%m-%d %H:%M:%S')
            if m.group(2):
                ts = ts.replace(microsecond=int(
                    (m.group(2)[1:] + '000000')[:6]))
            return ts.astimezone(), line.strip()
    return None, None


def local_report(service=DEFAULT_SERVICE, log_file=DEFAULT_LOG_FILE,
                 proc_root='/proc', match=None, prefer=None,
                 amqp_port=5672):
    """The on-node half of ``compute node show --local`` (runbook S8).

    ``prefer`` (the host name): when several processes of ``service`` run
    on this machine (test rigs run one per simulated host), keep those
    whose command line mentions it.

    Returns ``(fields, ok)``: an ordered list of (name, value) and whether
    the process runs AND has connected to AMQP since it started (a log
    line newer than the start, or an established connection to
    ``amqp_port`` now).
    """
    procs = find_processes(service, proc_root, match)
    if prefer and len(procs) > 1:
        preferred = [p for p in procs if prefer in p[2]]
        procs = preferred or procs
    fields: list[tuple[str, str | None]] = []
    ok = False
    if not procs:
        fields.append(('Local Process', '%s not running' % service))
        fields.append(('Local Process Since', None))
    else:
        newest = procs[-1]
        fields.append(('Local Process', '%s running (pid %s)' % (
            service, ', '.join(str(p[0]) for p in procs))))
        fields.append(('Local Process Since',
                       newest[1].isoformat(timespec='seconds')))
        conns = [c for p in procs
                 for c in amqp_connections(p[0], amqp_port, proc_root)]
        fields.append(('Local AMQP Connections',
                       '%d established (%s)' % (len(conns),
                                                ', '.join(sorted(set(conns))))
                       if conns else 'none to port %d' % amqp_port))
        ok = bool(conns)
    try:
        ts, line = last_amqp_line(log_file)
    except OSError as exc:
        fields.append(('Local AMQP', 'cannot read %s: %s' % (
            log_file, exc.strerror or exc)))
        fields.append(('Local Log', log_file))
        return fields, ok
    if ts is None:
        fields.append(('Local AMQP', 'no "Connected to AMQP server" line in '
                       '%s (oslo.messaging logs the first connection at '
                       'DEBUG level)' % log_file))
    elif procs and ts >= procs[-1][1].replace(microsecond=0):
        fields.append(('Local AMQP', 'connected at %s, after the process '
                       'started' % ts.isoformat(timespec='seconds')))
        ok = True
    elif procs:
        fields.append(('Local AMQP', 'last connected at %s, BEFORE the '
                       'process started: no connection since' %
                       ts.isoformat(timespec='seconds')))
    else:
        fields.append(('Local AMQP', 'last connected at %s (process not '
                       'running)' % ts.isoformat(timespec='seconds')))
    fields.append(('Local Log', log_file))
    return fields, ok
