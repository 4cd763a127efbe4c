"""What is really in place on this node: mounts, loop devices, nbd
devices, helper processes (read from /proc and /sys, never changed here),
and the retry policy of its busy mounts and devices."""

import os
import re
import signal

from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import waiting
from osc_nodeops.privileged import proc


#: Seconds between two looks at this node (a mount, a pid file, a process).
INTERVAL = 0.05


def again_while_busy(fn):
    """``fn()`` (an unmount, a detach), again after 0.3, 0.6, 0.9, 1.2 s
    while it raises ``PrivilegedError`` (a busy mount, a device still in
    use): ``calls.call_with_retry`` with this node's policy."""
    return calls.call_with_retry(
        fn, attempts=5, backoff=calls.linear(0.3),
        retry_if=lambda exc: isinstance(exc, proc.PrivilegedError))


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
    proc.kill(pid, signal.SIGTERM)
    if not waiting.wait_until(lambda: not pid_alive(pid, expect), timeout,
                              INTERVAL, last_look=True):
        proc.kill(pid, signal.SIGKILL)
        waiting.wait_until(lambda: not pid_alive(pid, expect), timeout,
                           INTERVAL, last_look=True)
    proc.reap(pid)
    return True


def loop_backing(device, sys_root='/sys'):
    name = os.path.basename(device)
    try:
        with open(os.path.join(sys_root, 'block', name, 'loop',
                               'backing_file')) as f:
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


def nbd_module_loaded(sys_root='/sys'):
    return os.path.isdir(os.path.join(sys_root, 'module', 'nbd')) or \
        os.path.exists(os.path.join(sys_root, 'block', 'nbd0'))


def fuse_available(dev_fuse='/dev/fuse'):
    return os.path.exists(dev_fuse) and bool(proc.which('nbdfuse'))


def free_nbd_devices(sys_root='/sys'):
    """nbd devices with no ``pid`` file (nova's rule), in numeric order."""
    block = os.path.join(sys_root, 'block')
    try:
        names = os.listdir(block)
    except FileNotFoundError:
        return []
    devs = sorted((n for n in names if re.fullmatch(r'nbd\d+', n)),
                  key=lambda n: int(n[3:]))
    return [d for d in devs
            if not os.path.exists(os.path.join(block, d, 'pid'))]


def nbd_pid(device, sys_root='/sys'):
    """The pid of the qemu-nbd serving ``device`` (None when it is free)."""
    path = os.path.join(sys_root, 'block', os.path.basename(device), 'pid')
    return read_pid(path)
