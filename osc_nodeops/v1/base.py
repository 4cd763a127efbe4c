"""Shared pieces of the cliff command classes.

Only cheap imports here: osc_lib and cliff are already loaded by ``openstack``.
The ops layer is imported inside ``take_action`` of each command.
"""

import sys

from osc_lib.command import command
from osc_lib import exceptions

# Exit codes shared by every command: 0 all done, 1 something was not done
# (the rows say what), 2 usage error (argparse already uses 2).
EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2


class UsageError(exceptions.CommandError):
    """Arguments that do not go together (or one that is missing).

    Found after argparse, so argparse cannot say it; the command still exits
    with argparse's status, 2, and one line on stderr.  Raise it before
    anything is changed.
    """


class ExitStatusMixin(object):
    """Let a command print its rows *and* exit non-zero.

    cliff returns whatever ``run`` returns as the process exit status, but a
    command that raises loses its output.  Commands set ``self.exit_status``
    inside ``take_action``; ``run`` returns it after the formatter has written
    the rows to stdout.
    """

    exit_status = EXIT_OK

    def run(self, parsed_args):
        self.exit_status = EXIT_OK
        self.api_timeout = getattr(parsed_args, 'api_timeout', None)
        try:
            rc = super(ExitStatusMixin, self).run(parsed_args)
        except UsageError as exc:
            sys.stderr.write('openstack %s: error: %s\n' % (
                getattr(self, 'cmd_name', None) or '', exc))
            return EXIT_USAGE
        return rc or self.exit_status


class NodeOpsLister(ExitStatusMixin, command.Lister):
    """A Lister whose exit status tells whether everything was done."""

    @property
    def conn(self):
        return bounded_connection(self)


class NodeOpsShowOne(ExitStatusMixin, command.ShowOne):
    """A ShowOne whose exit status tells whether everything was done."""

    @property
    def conn(self):
        return bounded_connection(self)


class NodeOpsCommand(ExitStatusMixin, command.Command):
    """A plain command (no formatted output) with an exit status."""

    @property
    def conn(self):
        return bounded_connection(self)


def bounded_connection(command):
    """OSC's openstacksdk Connection, with a timeout on every API request
    (``--api-timeout``, else 60 s): OSC's own session has none."""
    from osc_nodeops.ops import engine
    conn = command.app.client_manager.sdk_connection
    engine.bound_api_timeout(conn, getattr(command, 'api_timeout', None))
    return conn


def add_api_timeout_argument(parser):
    parser.add_argument(
        '--api-timeout', type=positive_float, default=None,
        metavar='SECONDS',
        help='Give up on an API request that has not answered within '
             'SECONDS (connect, and each read; default 60).  A request that '
             'timed out counts as a transient fault: it is checked, then '
             'retried')


def positive_int(text):
    """argparse type: an integer of at least 1."""
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not an integer' % text)
    if value < 1:
        raise argparse.ArgumentTypeError('must be at least 1, got %d' % value)
    return value


def non_negative_int(text):
    """argparse type: an integer of at least 0."""
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not an integer' % text)
    if value < 0:
        raise argparse.ArgumentTypeError('must be 0 or more, got %d' % value)
    return value


def positive_float(text):
    """argparse type: a finite number above 0 (not NaN, not infinity: a
    wait must end)."""
    import argparse
    import math
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not a number' % text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError('must be a positive finite number, '
                                         'got %s' % text)
    return value


def event_printer(app):
    """An ``events`` callback for the ops layer: one line per event on the
    app's stderr."""
    emit = progress_printer(getattr(app, 'stderr', None))
    return lambda event: emit(str(event))


def progress_printer(stream=None):
    """Return a callable that writes one progress line for people to stderr.

    stdout carries only the formatted result, so ``-f json | jq`` works.
    """
    stream = stream or sys.stderr

    def emit(message):
        stream.write(message.rstrip('\n') + '\n')
        stream.flush()

    return emit


class translate_errors(object):
    """``with translate_errors():`` turns ``osc_nodeops.errors`` exceptions
    into the exits above: ``UsageError`` exit 2, any other one line and
    exit 1.  (Until ``ExitStatusMixin`` maps them itself.)"""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        from osc_nodeops import errors
        if exc_type is None or not issubclass(exc_type, errors.NodeOpsError):
            return False
        if isinstance(exc, errors.UsageError):
            raise UsageError(str(exc)) from exc
        raise exceptions.CommandError(str(exc)) from exc
