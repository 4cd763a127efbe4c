"""The operator's own step of ``compute node maintain`` (``--exec`` /
``--check``): one shell command line with ``{host}`` substituted.

The command line is the operator's (a shell is what they asked for:
``ssh {host} 'apt-get -y upgrade && reboot'``).  The host name comes from
nova, so it is checked against what a host name may hold and substituted
shell-quoted: it can never add a command.  The step runs in its own session
and process group, so a timeout ends it and everything it started.

Its environment is explicit: ``PATH``, ``HOME``, ``LANG``, ``TERM`` and the
variables the operator names (``--exec-env NAME``), never the cloud's
credentials (``OS_*``) or anything else of ours by accident.
"""

import os
import re
import shlex
import signal
import subprocess
import time

HOST_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,254}')
NAME_RE = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
PLACEHOLDER = '{host}'
BASE_ENV = ('PATH', 'HOME', 'LANG', 'TERM')
DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
# Seconds between two looks at ``cancel`` while a step runs in a thread.
TICK = 0.2


class StepError(Exception):
    """The step could not be built (bad host name)."""


def command_line(template, host):
    """``template`` with every ``{host}`` replaced by the quoted host."""
    if not HOST_RE.fullmatch(host or ''):
        raise StepError('refusing to run a step for host %r: not a host '
                        'name' % (host,))
    return template.replace(PLACEHOLDER, shlex.quote(host))


def check_env_name(name):
    """``name`` if it may be forwarded to a step, else ``StepError``."""
    if not NAME_RE.fullmatch(name or ''):
        raise StepError('--exec-env %r: not an environment variable name'
                        % (name,))
    return name


def environment(forward=(), source=None):
    """The step's environment: ``BASE_ENV`` and ``forward`` from
    ``source`` (``os.environ``), those that are set."""
    source = os.environ if source is None else source
    env = {'PATH': DEFAULT_PATH}
    for name in BASE_ENV + tuple(check_env_name(n) for n in forward):
        if name in source:
            env[name] = source[name]
    return env


def run(template, host, timeout, forward=(), grace=5.0, cancel=None):
    """Run the step; return ``(exit status, last lines of its output)``.

    ``cancel`` (a ``threading.Event``, for a step run in a thread, where no
    SIGINT arrives): once set, the step's process group is ended and
    ``KeyboardInterrupt`` raised, as a Ctrl-C does in the main thread.

    Exit status ``None`` means it did not finish within ``timeout`` seconds
    (its process group got SIGTERM, then SIGKILL after ``grace``).  Its
    environment is ``environment(forward)``.
    """
    argv = ['/bin/sh', '-c', command_line(template, host)]
    env = environment(forward)
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True, close_fds=True,
                             env=env, text=True, errors='replace')
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            out, _ = child.communicate(
                timeout=max(0.0, left if cancel is None else min(left, TICK)))
            return child.returncode, _tail(out)
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                _end_group(child, grace)
                return None, ''
            if cancel.is_set():   # a Ctrl-C the main thread passed on
                _end_group(child, grace)
                raise KeyboardInterrupt()
        except BaseException:
            _end_group(child, grace)
            raise


def _end_group(child, grace):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.communicate(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(text, lines=3, limit=400):
    kept = ' | '.join(x.strip() for x in (text or '').strip().splitlines()
                      [-lines:] if x.strip())
    return kept[-limit:]
