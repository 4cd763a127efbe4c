"""Running one command: the only place that calls ``subprocess``."""

import os
import subprocess


class PrivilegedError(Exception):
    """A root-only step failed; the message is one line."""


def _one_line(text):
    return ' '.join((text or '').split())[:400]


def is_root():
    return os.geteuid() == 0


def run(argv, timeout=60, check=True, input=None):
    """Run ``argv`` (no shell); return the CompletedProcess (text).

    A non-zero exit raises :class:`PrivilegedError` naming the command and
    its stderr when ``check`` is true.  A missing executable is reported the
    same way.
    """
    try:
        res = subprocess.run(list(argv), capture_output=True, text=True,
                             timeout=timeout, input=input,
                             stdin=None if input is not None
                             else subprocess.DEVNULL)
    except FileNotFoundError:
        raise PrivilegedError('%s: command not found' % argv[0])
    except subprocess.TimeoutExpired:
        raise PrivilegedError('%s did not finish within %d s'
                              % (' '.join(argv), timeout))
    if check and res.returncode != 0:
        raise PrivilegedError('%s failed (exit %d): %s' % (
            ' '.join(argv), res.returncode,
            _one_line(res.stderr or res.stdout)))
    return res


def spawn(argv, log_path):
    """Start a long-running helper in its own session.

    Its own session (``setsid``) keeps a Ctrl-C at the terminal from killing
    it before we have unmounted what depends on it: teardown stops it
    explicitly.  Output goes to ``log_path``.
    """
    with open(log_path, 'ab') as log:
        try:
            return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log,
                                    start_new_session=True, close_fds=True)
        except FileNotFoundError:
            raise PrivilegedError('%s: command not found' % argv[0])


def which(name):
    import shutil
    return shutil.which(name)
