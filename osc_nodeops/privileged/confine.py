"""``--exec`` / ``--shell`` confined to the guest tree.

:func:`argv` builds one argv: ``unshare`` a mount and a PID namespace and
run this module (``python -m osc_nodeops.privileged.confine``) in them.
Inside, :func:`main`:

* mounts a tmpfs on ``NEW_ROOT`` (an empty directory of the session) and
  gives it, read-only, the host's ``/usr`` ``/bin`` ``/sbin`` ``/lib*``
  (the tools and their libraries; symbolic links where the host has them),
  ``/etc/ld.so.cache``, and the device nodes ``null zero full random
  urandom tty``; nothing else of the host (no ``/etc``, no ``/proc``, no
  ``/home``, no other device);
* binds the guest's mount point at the same path inside (``nosuid, nodev,
  noexec``, read-only unless the session is read-write);
* ``chroot``s there, changes into the guest, starts the command and stays
  as the namespace's init: when the command exits, every process it left
  behind is killed with the namespace.

So an absolute symbolic link in the guest (``/etc/shadow``) resolves in the
confined root, where the host's file does not exist.
"""

import ctypes
import os
import signal
import sys

HOST_DIRS = ('usr', 'bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32')
HOST_FILES = ('etc/ld.so.cache',)
DEV_NODES = ('null', 'zero', 'full', 'random', 'urandom', 'tty')

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18

EXIT_SETUP_FAILED = 126


def argv(new_root, guest, command, read_write=False):
    """The one argv that runs ``command`` confined (see the module doc)."""
    return ['unshare', '--mount', '--pid', '--fork', '--kill-child',
            '--propagation', 'private', '--', sys.executable, '-m',
            'osc_nodeops.privileged.confine', new_root, guest,
            'rw' if read_write else 'ro', '--'] + list(command)


def _enc(text):
    return text.encode() if text is not None else None


def _mount(libc, source, target, fstype, flags):
    if libc.mount(_enc(source), _enc(target), _enc(fstype), flags,
                  None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def _bind(libc, source, target, extra_flags):
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, 'a').close()
    _mount(libc, source, target, None, MS_BIND | MS_REC)
    _mount(libc, None, target, None,
           MS_REMOUNT | MS_BIND | extra_flags)


def setup(new_root, guest, read_write):
    libc = ctypes.CDLL(None, use_errno=True)
    _mount(libc, None, '/', None, MS_REC | MS_PRIVATE)
    _mount(libc, 'tmpfs', new_root, 'tmpfs', MS_NOSUID | MS_NODEV)
    os.chmod(new_root, 0o755)
    for name in HOST_DIRS:
        host = '/' + name
        inside = os.path.join(new_root, name)
        if os.path.islink(host):
            os.symlink(os.readlink(host), inside)
        elif os.path.isdir(host):
            _bind(libc, host, inside, MS_RDONLY | MS_NODEV)
    for name in HOST_FILES:
        if os.path.isfile('/' + name):
            _bind(libc, '/' + name, os.path.join(new_root, name),
                  MS_RDONLY | MS_NODEV | MS_NOSUID | MS_NOEXEC)
    for name in DEV_NODES:
        if os.path.exists('/dev/' + name):
            _bind(libc, '/dev/' + name, os.path.join(new_root, 'dev', name),
                  MS_NOSUID | MS_NOEXEC)
    os.makedirs(os.path.join(new_root, 'tmp'), mode=0o1777, exist_ok=True)
    _bind(libc, guest, new_root + guest,
          MS_NOSUID | MS_NODEV | MS_NOEXEC | (0 if read_write else MS_RDONLY))
    os.chroot(new_root)
    os.chdir(guest)


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
            os.execvp(command[0], command)
        except OSError as exc:
            sys.stderr.write('%s: %s\n' % (command[0], exc.strerror))
            os._exit(127)
    while True:
        pid, status = os.wait()
        if pid == child:
            return os.waitstatus_to_exitcode(status)


def main(args):
    new_root, guest, mode, sep = args[:4]
    command = args[4:]
    try:
        setup(new_root, guest, mode == 'rw')
    except OSError as exc:
        sys.stderr.write('inspect-disk: cannot confine the command to the '
                         'guest: %s\n' % exc)
        return EXIT_SETUP_FAILED
    code = _init(command)
    return 128 - code if code < 0 else code


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
