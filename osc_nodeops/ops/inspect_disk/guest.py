"""What the operator does with the mounted guest tree.

The guest's files are hostile data: paths are resolved inside the guest
(:func:`guest_path`), nothing is followed out of it, and commands run with
the mount point as their working directory.
"""

import datetime
import os
import signal
import stat
import tempfile

from osc_nodeops.ops.cloud import waiting
from osc_nodeops.ops.inspect_disk.request import InspectError
from osc_nodeops.privileged import confine as confine_mod
from osc_nodeops.privileged import files
from osc_nodeops.privileged import proc

LIST_COLUMNS = ('Name', 'Type', 'Size', 'Mode', 'UID', 'GID', 'Modified',
                'Link Target')
COPY_COLUMNS = ('Path', 'Destination', 'Type', 'Bytes')

_TYPES = ((stat.S_ISDIR, 'directory'), (stat.S_ISREG, 'file'),
          (stat.S_ISLNK, 'link'), (stat.S_ISCHR, 'char device'),
          (stat.S_ISBLK, 'block device'), (stat.S_ISFIFO, 'fifo'),
          (stat.S_ISSOCK, 'socket'))


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
    resolved: list[str] = []
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


def invoking_user():
    """(uid, gid) of who ran ``sudo``, else our own."""
    uid, gid = os.environ.get('SUDO_UID', ''), os.environ.get('SUDO_GID', '')
    if uid.isdigit() and gid.isdigit():
        return int(uid), int(gid)
    return os.getuid(), os.getgid()


def file_mode(guest_mode):
    """A copied file's mode: no setuid/setgid/sticky, at most 0644 (0755
    when the guest's file is executable)."""
    perm = stat.S_IMODE(guest_mode) & 0o777
    return perm & (0o755 if perm & 0o111 else 0o644)


def dir_mode(guest_mode):
    """A copied directory's mode: at most 0755, at least 0700."""
    return (stat.S_IMODE(guest_mode) & 0o755) | 0o700


def copy_out(root, path, dest):
    """Copy a guest file or tree to ``dest`` on the host; never overwrite.

    ``dest`` must not exist, or be a directory (the copy goes inside).
    Data only: regular files and directories (modes capped by
    :func:`file_mode` / :func:`dir_mode`, no xattrs, owned by the invoking
    user), links copied as links (never followed), device nodes, fifos
    and sockets skipped.  Every name is created exclusively, so a link
    planted at ``dest`` meanwhile makes it fail instead of writing there.
    """
    src = guest_path(root, path)
    if not os.path.lexists(src):
        raise InspectError('%s: no such file or directory in the guest'
                           % path)
    if os.path.isdir(dest):
        dest = os.path.join(dest, os.path.basename(src.rstrip('/')) or
                            'root')
    if os.path.lexists(dest):
        raise InspectError('%s exists; not overwriting it' % dest)
    rows: list = []
    try:
        _copy_entry(src, dest, '/' + '/'.join(p for p in path.split('/')
                                              if p), invoking_user(), rows)
    except FileExistsError as exc:
        raise InspectError('%s exists; not overwriting it' % exc.filename)
    return rows


def _copy_entry(s, d, rel, owner, rows):
    st = os.lstat(s)
    if stat.S_ISLNK(st.st_mode):
        files.symlink(os.readlink(s), d, *owner)
        rows.append((rel, d, 'link', 0))
    elif stat.S_ISREG(st.st_mode):
        files.copy_data(s, d, owner[0], owner[1], file_mode(st.st_mode))
        rows.append((rel, d, 'file', st.st_size))
    elif stat.S_ISDIR(st.st_mode):
        files.make_dir(d)
        rows.append((rel, d, 'directory', 0))
        try:
            for n in sorted(os.listdir(s)):
                _copy_entry(os.path.join(s, n), os.path.join(d, n),
                            rel.rstrip('/') + '/' + n, owner, rows)
        finally:
            files.set_dir_owner_mode(d, owner[0], owner[1],
                                     dir_mode(st.st_mode))
    else:
        rows.append((rel, '', 'skipped (special file)', 0))


# What a confined command may know of the operator's environment.
PASSED_ENV = ('TERM', 'LANG')
CONFINED_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


def confined_env(root):
    """The whole environment of a confined command: ``PATH``, ``HOME``
    (its ``/tmp``), ``INSPECT_MOUNTPOINT`` and the caller's ``TERM`` and
    ``LANG``.  Never ``OS_*``, tokens, agent sockets or anything else the
    operator's environment holds: the guest's files decide what the
    command's tools run."""
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.update(PATH=CONFINED_PATH, HOME='/tmp', INSPECT_MOUNTPOINT=root)
    return env


def run_in(root, argv, confine=True):
    """Run ``argv`` in the guest tree at ``root``; SIGINT goes to it alone.

    ``confine`` (always, for ``--exec`` and ``--shell``): as nobody of the
    host's, without capability, network or credential, in namespaces whose
    root holds only the host's tools, read-only, and the guest at ``root``
    (``privileged.confine``, with :func:`confined_env`), so that what the
    guest's files make the tools do stays inside.  Like ``system(3)``, we
    ignore SIGINT while the command runs (the terminal's Ctrl-C reaches
    it, and it decides), then restore it; teardown follows.
    """
    env = confined_env(root)
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        old = None
    new_root = None
    try:
        if confine:
            new_root = tempfile.mkdtemp(prefix='.confined-',
                                        dir=os.path.dirname(root))
            read_write = not os.statvfs(root).f_flag & os.ST_RDONLY
            return proc.run_foreground(
                confine_mod.argv(new_root, root, argv, read_write),
                cwd='/', env=env, stop_signal=signal.SIGKILL)
        return proc.run_foreground(argv, cwd=root, env=env)
    finally:
        # What the command started and left behind (``sh -c 'a; b'``
        # forks, ``cmd &`` detaches) would keep the mount busy (confined,
        # the PID namespace ended them already).
        end_processes_using(root)
        if new_root:
            files.rmdir(new_root)
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

    def all_gone():
        pids[:] = [p for p in pids if _alive(p)]
        return not pids

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            proc.kill(pid, sig)
        if waiting.wait_until(all_gone, grace, 0.05):
            break
    return pids


def _alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[-1].split()[0] != 'Z'
    except (OSError, IndexError):
        return False


def exec_command(root, command):
    """``--exec CMD``: ``sh -c CMD`` in the mount point; ``$1`` is it."""
    return run_in(root, ['/bin/sh', '-c', command, 'inspect-disk', root])


def shell(root):
    return run_in(root, [os.environ.get('SHELL') or '/bin/sh'])
