"""One exception hierarchy for osc-nodeops, and one way to say an error.

Every layer raises these; ``osc_nodeops.v1.base.ExitStatusMixin.run`` is the
one place that turns them into one line on stderr and an exit status:

=====================  ======  ==============================================
exception              exit    meaning
=====================  ======  ==============================================
``UsageError``         2       arguments that do not go together; nothing
                               changed
``NotFound``           1       a host, server, port ... named does not exist;
                               nothing changed
``Refused``            1       the cloud's state (or the caller's rights)
                               forbid it; nothing changed
``Incomplete``         1       something was done, not everything (the rows
                               say what)
``Interrupted``        130     Ctrl-C (SIGINT): the report says what is known
=====================  ======  ==============================================

Only the standard library at import time: the plugin loads this for every
``openstack`` invocation.
"""

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

ADMIN_NEEDED = 'not allowed (this command needs the admin role)'

#: The table above, for each command's ``--help`` (also valid rST: the
#: docs include the epilog).
EXIT_STATUS_HELP = """Exit status:
  0 everything was done (or there was nothing to do);
  1 something was not done (the rows say what), or refused: nothing changed;
  2 usage error, also one found after parsing: nothing changed;
  130 interrupted by Ctrl-C: the rows say what is known."""


class NodeOpsError(Exception):
    """Base of every error osc-nodeops reports to the operator."""

    exit_status = EXIT_REFUSED


class UsageError(NodeOpsError):
    """Arguments that do not go together, or one that is missing or bad.

    Found after argparse, so argparse cannot say it; the command still exits
    with argparse's status, 2.  Raise it before anything is changed.
    """

    exit_status = EXIT_USAGE


class Refused(NodeOpsError):
    """The cloud's state or the caller's rights forbid it; nothing changed."""


class NotFound(Refused):
    """Something named on the command line does not exist."""


class Incomplete(NodeOpsError):
    """Part of the work was done; the report says what was not."""

    exit_status = EXIT_INCOMPLETE


class Interrupted(NodeOpsError):
    """Stopped by a signal (SIGINT, SIGTERM) before the work was done."""

    exit_status = EXIT_INTERRUPTED


def http_status(exc):
    """The HTTP status of an SDK / keystoneauth error, or None."""
    status = (getattr(exc, 'status_code', None)
              or getattr(exc, 'http_status', None))
    if status is None and type(exc).__name__ == 'ForbiddenException':
        status = 403  # made without a response (the SDK's own checks)
    return status


#: How :func:`one_line` reads an exception (``style``).
SDK = 'sdk'        # SDK/HTTP errors: details, status, 403 as ADMIN_NEEDED
STATUS = 'status'  # as SDK, but a 403 only as its status ("403: ...")
PLAIN = 'plain'    # ``str(exc)`` only (local errors: OSError, a step's)
NAMED = 'named'    # "TypeName: str(exc)" (driver errors whose text is a tuple)


def one_line(exc, limit=300, cut='...', style=SDK):
    """One line for any exception: SDK and HTTP errors included.

    A 403 becomes "not allowed (this command needs the admin role): ..." in
    every command; other HTTP errors carry their status.  ``exc`` may also
    be a text (a child's stderr; None is empty).  A text longer than
    ``limit`` (None: no limit) is cut to ``limit`` characters, the last of
    them ``cut``.  ``style``: :data:`SDK`, :data:`STATUS`, :data:`PLAIN` or
    :data:`NAMED` (each as its comment says).

    The only such helper: the call sites differ in ``limit``, ``cut`` and
    ``style`` only (each keeps the message it always printed).
    """
    if exc is None or isinstance(exc, str):
        text, status = exc or '', None
    elif style in (PLAIN, NAMED):
        text, status = str(exc), None
    else:
        text = getattr(exc, 'details', None) or str(exc) or \
            type(exc).__name__
        status = http_status(exc)
    text = ' '.join(str(text).split())
    if style == NAMED and not isinstance(exc, str):
        text = '%s%s' % (type(exc).__name__, ': ' + text if text else '')
    if status == 403 and style == SDK:
        text = '%s: %s' % (ADMIN_NEEDED, text)
    elif status and str(status) not in text:
        text = '%s: %s' % (status, text)
    if limit is not None and len(text) > limit:
        text = text[:limit - len(cut)] + cut
    return text
