"""``--exec`` / ``--shell`` confined to the guest tree, with no host privilege.

A guest's files decide what ordinary tools do (a ``core.fsmonitor`` in a
git config, a ``.bashrc``, a ``LD_PRELOAD`` in a config file a tool
sources): the command must be able to do nothing on the host that an
unprivileged user with no network could not.  :func:`argv` builds one argv:
``unshare`` a private mount namespace and run this module (``python -m
osc_nodeops.privileged.confine``) in it.  Inside, :func:`main`, still as
host root:

* creates a user namespace mapping its ids 0-65535 to the host's
  unprivileged range ``ID_BASE``..``ID_BASE+65535`` (nobody on the host
  has them);
* mounts a tmpfs on ``NEW_ROOT`` (an empty directory of the session) and
  gives it, read-only, the host's ``/usr`` ``/bin`` ``/sbin`` ``/lib*``
  (the tools and their libraries; symbolic links where the host has them),
  ``/etc/ld.so.cache``, the device nodes ``null zero full random urandom
  tty`` and a small writable tmpfs at ``/tmp``; nothing else of the host
  (no ``/etc``, no ``/proc``, no ``/sys``, no ``/home``, no other device);
* binds the guest's mount point at the same path inside, id-mapped through
  that user namespace (the guest's root owns the guest's files there;
  ``nosuid, nodev, noexec``, read-only unless the session is read-write),
  then makes the new root read-only;
* joins the user namespace (host uid and gid ``ID_BASE``, no supplementary
  group) and there unshares new mount, PID, network (only ``lo``, down),
  IPC, UTS and cgroup namespaces; its child, the new PID namespace's init,
  ``pivot_root``s into ``NEW_ROOT`` and detaches the old root, so no path
  leads back to the host's files (the ``chroot`` escape has nowhere to
  go), changes into the guest and starts the command through
  :data:`DROP`: ``setpriv`` with an empty capability bounding set, no
  inheritable or ambient capability and ``PR_SET_NO_NEW_PRIVS``.  When the
  command exits, the init exits and every process it left behind is killed
  with the namespace (and so if we are killed).

The environment is the caller's business (``guest.run_in`` passes a
minimal one: never ``OS_*``, tokens or agent sockets).
"""

import ctypes
import os
import platform
import select
import signal
import struct
import sys

HOST_DIRS = ('usr', 'bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32')
HOST_FILES = ('etc/ld.so.cache',)
DEV_NODES = ('null', 'zero', 'full', 'random', 'urandom', 'tty')
TMP_OPTIONS = 'mode=1777,size=256m,nr_inodes=65536'

# The host ids of the confined command: systemd's "foreign" range (for
# files of foreign OS images), 65536 ids from 0x7FFE0000.
ID_BASE = 0x7FFE0000
ID_COUNT = 65536

# The command's last step before it runs: no capability can come back.
DROP = ['setpriv', '--no-new-privs', '--bounding-set=-all',
        '--inh-caps=-all', '--ambient-caps=-all', '--clear-groups', '--']

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x20000, 0x2000000, 0x4000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID = 0x8000000, 0x10000000, 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
# The new mount API (the same numbers on every architecture).
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC, AT_EMPTY_PATH = 1, 0o2000000, 0x1000
AT_FDCWD, MOVE_MOUNT_F_EMPTY_PATH = -100, 4
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 1, 2, 4
MOUNT_ATTR_NOEXEC, MOUNT_ATTR_IDMAP = 8, 0x100000
SYS_PIVOT_ROOT = {'x86_64': 155, 'aarch64': 41, 'ppc64le': 203,
                  's390x': 217, 'riscv64': 41}

EXIT_SETUP_FAILED = 126


def argv(new_root, guest, command, read_write=False):
    """The one argv that runs ``command`` confined (see the module doc)."""
    return ['unshare', '--mount', '--propagation', 'private', '--',
            sys.executable, '-m', 'osc_nodeops.privileged.confine', new_root,
            guest, 'rw' if read_write else 'ro', '--'] + list(command)


_libc = None


def _lib():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc


def _check(result, what):
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what)
    return result


def _enc(text):
    return text.encode() if text is not None else None


def _mount(source, target, fstype, flags, data=None):
    _check(_lib().mount(_enc(source), _enc(target), _enc(fstype), flags,
                        _enc(data)), target)


def _bind(source, target, extra_flags):
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, 'a').close()
    _mount(source, target, None, MS_BIND | MS_REC)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | extra_flags)


def user_namespace():
    """A descriptor of a new user namespace mapping 0-65535 to ``ID_BASE``.

    A child creates it and waits; we write its maps (as host root), open
    its namespace and let it go.
    """
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(ready_r)
            os.close(go_w)
            code = 0 if _lib().unshare(CLONE_NEWUSER) == 0 else 1
            os.write(ready_w, b'%d' % code)
            os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b'0':
            raise OSError(0, 'cannot create a user namespace', 'unshare')
        for name in ('uid_map', 'gid_map'):
            with open('/proc/%d/%s' % (child, name), 'w') as f:
                f.write('0 %d %d\n' % (ID_BASE, ID_COUNT))
        return os.open('/proc/%d/ns/user' % child, os.O_RDONLY)
    finally:
        os.close(ready_r)
        os.close(go_w)
        os.waitpid(child, 0)


def _bind_guest(guest, target, read_write, userns):
    """Bind ``guest`` at ``target``, id-mapped through ``userns``.

    A file system that cannot be id-mapped is bound as it is: its files
    then belong to nobody inside (readable where their mode lets anyone
    read them).
    """
    os.makedirs(target, exist_ok=True)
    flags = (MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |
             (0 if read_write else MOUNT_ATTR_RDONLY))
    libc = _lib()
    tree = _check(libc.syscall(SYS_OPEN_TREE, AT_FDCWD, _enc(guest),
                               OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC),
                  'open_tree %s' % guest)
    try:
        attr = struct.pack('QQQQ', flags | MOUNT_ATTR_IDMAP, 0, 0, userns)
        if libc.syscall(SYS_MOUNT_SETATTR, tree, b'', AT_EMPTY_PATH,
                        ctypes.c_char_p(attr), len(attr)) < 0:
            sys.stderr.write('inspect-disk: the guest file system cannot be '
                             'id-mapped (%s): its files belong to nobody '
                             'in the confined command\n'
                             % os.strerror(ctypes.get_errno()))
            attr = struct.pack('QQQQ', flags, 0, 0, 0)
            _check(libc.syscall(SYS_MOUNT_SETATTR, tree, b'', AT_EMPTY_PATH,
                                ctypes.c_char_p(attr), len(attr)),
                   'mount_setattr %s' % target)
        _check(libc.syscall(SYS_MOVE_MOUNT, tree, b'', AT_FDCWD,
                            _enc(target), MOVE_MOUNT_F_EMPTY_PATH),
               'move_mount %s' % target)
    finally:
        os.close(tree)


def build_root(new_root, guest, read_write, userns):
    """The confined root at ``new_root`` (host root, our own mount
    namespace; see the module doc)."""
    _mount(None, '/', None, MS_REC | MS_PRIVATE)
    _mount('tmpfs', new_root, 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=0755')
    for name in HOST_DIRS:
        host = '/' + name
        inside = os.path.join(new_root, name)
        if os.path.islink(host):
            os.symlink(os.readlink(host), inside)
        elif os.path.isdir(host):
            _bind(host, inside, MS_RDONLY | MS_NODEV | MS_NOSUID)
    for name in HOST_FILES:
        if os.path.isfile('/' + name):
            _bind('/' + name, os.path.join(new_root, name),
                  MS_RDONLY | MS_NODEV | MS_NOSUID | MS_NOEXEC)
    for name in DEV_NODES:
        if os.path.exists('/dev/' + name):
            _bind('/dev/' + name, os.path.join(new_root, 'dev', name),
                  MS_NOSUID | MS_NOEXEC)
    tmp = os.path.join(new_root, 'tmp')
    os.makedirs(tmp)
    _mount('tmpfs', tmp, 'tmpfs', MS_NOSUID | MS_NODEV, TMP_OPTIONS)
    _bind_guest(guest, new_root + guest, read_write, userns)
    _mount(None, new_root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID |
           MS_NODEV)


def enter(userns):
    """Become the user namespace's root (host uid ``ID_BASE``, no group of
    the host's) and unshare the namespaces our child will live in."""
    libc = _lib()
    _check(libc.setns(userns, CLONE_NEWUSER), 'setns')
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                        CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP),
           'unshare')
    name = b'inspect-disk'
    _check(libc.sethostname(name, len(name)), 'sethostname')


def pivot(new_root):
    """Make ``new_root`` (a mount of our private mount namespace) our ``/``
    and detach the old one: no path leads back to the host's files."""
    libc = _lib()
    os.chdir(new_root)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(0, 'pivot_root: unknown on %s' % platform.machine())
    _check(libc.syscall(number, b'.', b'.'), 'pivot_root')
    _check(libc.umount2(b'.', MNT_DETACH), 'umount the old root')
    os.chdir('/')


def _init(command):
    """Run ``command`` as our child and reap everything until it exits.

    We ignore SIGINT (the terminal's Ctrl-C goes to the command, which
    decides, as before); the command gets the default action back.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = os.fork()
    if child == 0:
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execvp(DROP[0], DROP + list(command))
        except OSError as exc:
            sys.stderr.write('%s: %s\n' % (DROP[0], exc.strerror))
            os._exit(127)
    while True:
        pid, status = os.wait()
        if pid == child:
            return os.waitstatus_to_exitcode(status)


def _setup_failed(exc):
    sys.stderr.write('inspect-disk: cannot confine the command to the '
                     'guest: %s\n' % exc)
    return EXIT_SETUP_FAILED


def main(args):
    new_root, guest, mode, sep = args[:4]
    command = args[4:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        userns = user_namespace()
        build_root(new_root, guest, mode == 'rw', userns)
        pivot(new_root)
        enter(userns)
        os.close(userns)
    except OSError as exc:
        return _setup_failed(exc)
    alive_r, alive_w = os.pipe()
    child = os.fork()
    if child == 0:
        # The new PID namespace's init: it dies with us (and everything
        # in the namespace with it), even if we died before it got here.
        os.close(alive_w)
        _lib().prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if select.select([alive_r], [], [], 0)[0]:
            os._exit(EXIT_SETUP_FAILED)
        os.close(alive_r)
        try:
            os.chdir(guest)
        except OSError as exc:
            os._exit(_setup_failed(exc))
        code = _init(command)
        os._exit(128 - code if code < 0 else code)
    os.close(alive_r)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
