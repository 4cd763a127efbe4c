"""``recover-all --dead --fence-check CMD``: the operator's power-status
query of a dead host (an IPMI or Redfish client, a script of theirs), whose
exit status 0 says the host is powered off.

Not a root step: it runs with our own rights.  Never through a shell: the
template is split with :func:`shlex.split` and ``{host}`` replaced inside
each word, so the host name is always part of exactly one argv element and
can never add a word or a command.  It gets an explicit minimal environment
(``operator_step.environment()``, as maintain's steps: ``PATH``,
``HOME``, ``LANG``, ``TERM``; no ``OS_*`` variable, no token), no stdin,
its output goes nowhere (never into nova, a row or a log), and it runs in
its own session so that a timeout ends it and everything it started.
"""

import shlex
import subprocess

from osc_nodeops.privileged import operator_step

PLACEHOLDER = operator_step.PLACEHOLDER


class FenceCheckError(Exception):
    """The check cannot be built or started (one line)."""


def argv(template, host):
    """The argv of ``template`` for ``host``; :class:`FenceCheckError` when
    it does not parse, is empty, names no ``{host}`` or starts with it, or
    ``host`` is not a host name."""
    try:
        words = shlex.split(template or '')
    except ValueError as exc:
        raise FenceCheckError('--fence-check does not parse: %s' % exc)
    if not words:
        raise FenceCheckError('--fence-check is empty')
    if PLACEHOLDER in words[0]:
        raise FenceCheckError('--fence-check: {host} cannot be the command '
                              'itself')
    if not any(PLACEHOLDER in w for w in words[1:]):
        raise FenceCheckError('--fence-check must name the host as {host} '
                              '(e.g. "ipmi-power-off-check {host}"): a '
                              'check of no particular host proves nothing')
    if not operator_step.HOST_RE.fullmatch(host or ''):
        raise FenceCheckError('refusing to run --fence-check for host %r: '
                              'not a host name' % (host,))
    return [w.replace(PLACEHOLDER, host) for w in words]


def run(template, host, timeout, grace=2.0):
    """Run the check; its exit status, or None when it did not finish
    within ``timeout`` seconds (its process group is then ended)."""
    args = argv(template, host)
    try:
        child = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
            close_fds=True, cwd='/', env=operator_step.environment())
    except OSError as exc:
        raise FenceCheckError('--fence-check could not start %s: %s' % (
            args[0], exc.strerror or type(exc).__name__))
    try:
        return child.wait(timeout)
    except subprocess.TimeoutExpired:
        operator_step._end_group(child, grace)
        return None
    except BaseException:
        operator_step._end_group(child, grace)
        raise
