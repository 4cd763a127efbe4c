"""The one opener of every file root writes, or reads as trusted.

Some commands run as root and take a file name from the command line
(``--events``, ``--state``, ``--journal``/``--undo``) or write under a
directory another user may own.  A local user who can write in one of the
directories on the way could otherwise plant a symbolic link (or a hard
link, or a file of their own) and have root append to, replace or trust a
file of the attacker's choosing.  So:

* the path is walked one directory at a time by descriptor
  (``O_DIRECTORY|O_NOFOLLOW``, ``dir_fd=``); a symbolic link on the way is
  followed only when it sits in a directory nobody else can write (owned by
  root or the caller, not group/world-writable) and is owned by root or the
  caller: a link someone else planted is refused, and nothing can be
  swapped in between the check and the use;
* the file itself is opened with ``O_NOFOLLOW|O_NOCTTY|O_CLOEXEC`` (a new
  file with ``O_CREAT``, mode 0600) and checked through its descriptor
  (``fstat``): a regular file, owned by the caller (the effective uid), not
  group- or world-writable, with one link.

Anything else raises :class:`Unsafe` (a ``UsageError``: one line, exit 2)
before a byte is read or written.  Standard library only.
"""

import errno
import os
import stat

from osc_nodeops import errors

_MAX_LINKS = 40
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class Unsafe(errors.UsageError):
    """A file or a path root must not use; nothing was read or written."""


def _trusted_dir(st):
    return st.st_uid in (0, os.geteuid()) and not st.st_mode & 0o022


def open_dir(path, label=None):
    """An ``O_DIRECTORY`` descriptor of the directory PATH, walked one
    component at a time (see the module's rule for symbolic links).
    Raises :class:`Unsafe`, or ``OSError`` (ENOENT, EACCES, ...)."""
    label = label or path
    parts = [p for p in path.split('/') if p]
    fd = os.open('/' if path.startswith('/') else '.', _DIR)
    links = 0
    try:
        while parts:
            comp = parts.pop(0)
            if comp == '.':
                continue
            try:
                nfd = os.open(comp, _DIR | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    raise
                if not (_trusted_dir(os.fstat(fd)) and
                        st.st_uid in (0, os.geteuid())):
                    raise Unsafe('%s: refusing to follow the symbolic link '
                                 '%s in a directory another user can write'
                                 % (label, comp))
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
                target = os.readlink(comp, dir_fd=fd)
                if target.startswith('/'):
                    os.close(fd)
                    fd = os.open('/', _DIR)
                parts[0:0] = [p for p in target.split('/') if p]
                continue
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def split(path, label=None):
    """``(dir_fd, name)``: the walked parent directory of PATH (the caller
    closes it) and the last component (never followed)."""
    head, name = os.path.split(path)
    if name in ('', '.', '..'):
        raise Unsafe('%s: not a file name' % (label or path))
    return open_dir(head or '.', label or path), name


def check(fd, label):
    """Raise :class:`Unsafe` unless FD is a regular file of the caller
    (effective uid), not group/world-writable, with one link."""
    st = os.fstat(fd)
    why = None
    if not stat.S_ISREG(st.st_mode):
        why = 'not a regular file'
    elif st.st_uid != os.geteuid():
        why = 'owned by uid %d, not by uid %d' % (st.st_uid, os.geteuid())
    elif st.st_mode & 0o022:
        why = 'group- or world-writable (mode %04o)' % stat.S_IMODE(
            st.st_mode)
    elif st.st_nlink != 1:
        why = 'it has %d hard links' % st.st_nlink
    if why:
        raise Unsafe('%s: refusing to use it: %s' % (label, why))
    return st


def open_file(path, flags=os.O_RDONLY, mode=0o600, label=None):
    """Open PATH with FLAGS (``O_WRONLY|O_APPEND|O_CREAT``, ...) plus
    ``O_NOFOLLOW|O_NOCTTY|O_CLOEXEC`` through :func:`split`, then
    :func:`check` it; return the descriptor.  A refusal closes it and
    leaves the file as it was (``O_TRUNC`` is not allowed: truncation would
    come before the check)."""
    if flags & os.O_TRUNC:
        raise ValueError('O_TRUNC acts before the check')
    label = label or path
    dfd, name = split(path, label)
    try:
        try:
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NOCTTY |
                         os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Unsafe('%s: refusing to follow a symbolic link' %
                             label)
            raise
    finally:
        os.close(dfd)
    try:
        check(fd, label)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_append(path, label=None):
    """:func:`open_file` for appending, a new file made 0600."""
    return open_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                     label=label)


def read_text(path, label=None):
    """The content of a trusted file (:func:`open_file`), as text."""
    fd = open_file(path, os.O_RDONLY, label=label)
    with os.fdopen(fd, 'r', encoding='utf-8') as f:
        return f.read()
