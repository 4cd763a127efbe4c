"""Running one command: the only place that calls ``subprocess``."""

import os
import signal
import subprocess

from osc_nodeops import errors
from osc_nodeops import timeutil


class PrivilegedError(errors.NodeOpsError):
    """A root-only step failed; the message is one line (exit 1)."""


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
        raise PrivilegedError('%s did not finish within %s s'
                              % (' '.join(argv),
                                 timeutil.seconds_text(timeout)))
    if check and res.returncode != 0:
        raise PrivilegedError('%s failed (exit %d): %s' % (
            ' '.join(argv), res.returncode,
            errors.one_line(res.stderr or res.stdout, limit=400, cut='')))
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


def kill(pid, sig):
    """``kill(2)`` one process; False if it is gone already."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def reap(pid):
    """Collect ``pid``'s exit status if it is our child and has exited."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_foreground(argv, cwd, env, grace=10, stop_signal=signal.SIGTERM):
    """Run ``argv`` in ``cwd`` with the terminal; return its exit status.

    The child gets SIGINT's default action back (we ignore it while it runs,
    like ``system(3)``).  If anything interrupts the wait (SIGTERM, SIGHUP
    raised as an exception in us), the child gets ``stop_signal``, then
    SIGKILL after ``grace`` seconds, before the exception goes on.
    """
    child = subprocess.Popen(list(argv), cwd=cwd, env=env,
                             preexec_fn=_default_sigint)
    try:
        return child.wait()
    except BaseException:
        child.send_signal(stop_signal)
        try:
            child.wait(grace)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise
