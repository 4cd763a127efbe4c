"""The one command base of osc-nodeops (the option families and argparse
types are in ``options.py``).

Only cheap imports here: osc_lib and cliff are already loaded by ``openstack``.
The ops layer is imported inside ``take_action`` of each command, the SDK
inside ``run`` when an error has to be said.
"""

import argparse
import logging
import signal
import threading
import typing

from cliff import display
from osc_lib.command import command

from osc_nodeops import errors
from osc_nodeops import terminal
from osc_nodeops.v1 import options

if typing.TYPE_CHECKING:  # pragma: no cover
    # osc-lib's shell, which OSC's ``OpenStackShell`` extends: the plugin
    # needs osc-lib only; python-openstackclient provides the command.
    from osc_lib import shell

LOG = logging.getLogger(__name__)

# The exit statuses of every command: see ``osc_nodeops.errors``.
EXIT_OK = errors.EXIT_OK
EXIT_INCOMPLETE = errors.EXIT_INCOMPLETE
EXIT_USAGE = errors.EXIT_USAGE

UsageError = errors.UsageError


def take_sigint():
    """Make Ctrl-C raise ``KeyboardInterrupt`` in the main thread for the
    whole command; return what to give back (``give_back_sigint``).

    A process started with SIGINT ignored (``cmd &`` in a script, or a CI
    runner that ignores it: children inherit an ignored signal) gets no
    handler from Python, so every SIGINT was lost: a command whose API call
    hung (version discovery included) went on until the call's timeout
    (issue 19 items 3 and 4).  One SIGINT ends every command: cliff turns
    the ``KeyboardInterrupt`` into exit 130, and the engine's own handler
    (``Executor``) takes over while it runs.  A handler someone else
    installed is left alone."""
    if threading.current_thread() is not threading.main_thread():
        return None
    current = signal.getsignal(signal.SIGINT)
    if current not in (signal.SIG_IGN, signal.SIG_DFL, None):
        return None
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return current


def give_back_sigint(previous):
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


class ExitStatusMixin(command.Command):
    """Let a command print its rows *and* exit non-zero; say errors.

    A typed base (osc-lib's ``Command``), not a bare mixin, so that the
    type checker knows ``self.app`` and the ``super()`` calls; the leaf
    classes still list ``command.Lister`` / ``ShowOne`` after it, and the
    method order is the one a mixin had.

    cliff returns whatever ``run`` returns as the process exit status, but a
    command that raises loses its output.  Commands set ``self.exit_status``
    inside ``take_action``; ``run`` returns it after the formatter has written
    the rows to stdout.

    ``run`` is also the one place that turns an error into one line on
    stderr and an exit status: a :class:`errors.NodeOpsError` by its
    ``exit_status``, an openstacksdk error (a 403 says the admin role is
    needed) as a refusal, 1.
    """

    exit_status = EXIT_OK
    error_after_rows: str | None = None

    def run(self, parsed_args):
        self.exit_status = EXIT_OK
        self.api_timeout = getattr(parsed_args, 'api_timeout', None)
        self.error_after_rows = None
        previous = take_sigint()
        for note in options.deprecations(parsed_args):
            self.say('warning: %s' % note)
        try:
            rc = super(ExitStatusMixin, self).run(parsed_args)
        except errors.NodeOpsError as exc:
            return self._say_error(exc, exc.exit_status)
        except Exception as exc:
            from openstack import exceptions as sdk_exc
            if not isinstance(exc, sdk_exc.SDKException):
                raise
            return self._say_error(exc, errors.EXIT_REFUSED)
        finally:
            give_back_sigint(previous)
        if self.error_after_rows:
            self.say(self.error_after_rows)
        return rc or self.exit_status

    def _say_error(self, exc, status):
        LOG.debug('%s failed', getattr(self, 'cmd_name', None) or 'command',
                  exc_info=True)
        text = errors.one_line(exc, limit=2000)
        if isinstance(exc, errors.UsageError):
            text = 'openstack %s: error: %s' % (
                getattr(self, 'cmd_name', None) or '', text)
        elif isinstance(exc, errors.Incomplete):
            text = 'not done: %s' % text
        self.say(text)
        return status

    def say(self, message):
        """One line for people on the app's stderr (stdout carries only
        the formatted result, so ``-f json | jq`` works)."""
        stream = self.app.stderr
        stream.write(terminal.printable(str(message).rstrip('\n')) + '\n')
        stream.flush()


class _KeepTables(argparse.HelpFormatter):
    """Fill paragraphs as the formatter after it in the MRO does, but keep
    the lines of a paragraph whose lines after the first are indented (a
    table)."""

    def _fill_text(self, text, width, indent):
        out = []
        for para in text.split('\n\n'):
            lines = para.splitlines()
            if len(lines) > 1 and all(ln.startswith(' ')
                                      for ln in lines[1:]):
                out.append('\n'.join(indent + ln for ln in lines))
            else:
                out.append(super()._fill_text(para, width, indent))
        return '\n\n'.join(out)


def _keep_tables(formatter_class):
    """FORMATTER_CLASS (the parser's own) with ``_KeepTables`` first."""
    return type('Formatter', (_KeepTables, formatter_class), {})


class _NodeOpsCommand(ExitStatusMixin, display.DisplayCommandBase):
    """What every osc-nodeops command shares: the app, its connection, its
    progress printer, and the rows of an engine report.

    cliff's ``DisplayCommandBase`` is a typed base (``produce_output``);
    the leaves add ``Lister`` or ``ShowOne``, which come before it in the
    MRO, so the methods run in the order they did on a bare mixin."""

    app: 'shell.OpenStackShell'

    # The login waits for the first cloud call (``conn``): osc-lib's
    # ``prepare_to_run_command`` logs in before cliff parses a command's
    # arguments, so a typo or a bad combination would wait on keystone (or
    # fail on an unreachable one) before its usage error.  cliff sees
    # False; ``conn`` runs the same ``prepare_to_run_command`` with True,
    # after ``request()`` has judged the arguments.  A command that never
    # calls the cloud (the local steps, ``inspect-disk --cleanup``) never
    # logs in.
    auth_required = False
    _logged_in = False

    def get_epilog(self):
        # The exit statuses first, then cliff's parts (hooks, the plugin
        # line), as its ``_epilog`` would place them.
        return errors.EXIT_STATUS_HELP + super().get_epilog()

    def get_parser(self, prog_name):
        parser = super(_NodeOpsCommand, self).get_parser(prog_name)
        parser.formatter_class = _keep_tables(parser.formatter_class)
        return parser

    @property
    def conn(self):
        """OSC's authenticated openstacksdk ``Connection``, with a timeout
        on every API request (``--api-timeout``, else 60 s): OSC's own
        session has none."""
        from osc_nodeops.ops.cloud import calls
        if not self._logged_in:
            self.auth_required = True
            self.app.prepare_to_run_command(self)
            self._logged_in = True
        conn = self.app.client_manager.sdk_connection
        calls.bound_api_timeout(conn, getattr(self, 'api_timeout', None))
        if not getattr(self, '_discovered', False):
            calls.discover(conn)
            self._discovered = True
        return conn

    _sink = None

    def events(self, event):
        """The ``events`` callback of the ops layer: the
        ``ops.events.Sink`` of the run (the lines ``-q`` / ``-v`` ask for;
        with ``--events``, a live status block on a terminal and the JSON
        lines file)."""
        if self._sink is not None:
            self._sink(event)
        else:
            self.say(event)

    def verbose_level(self):
        """``openstack -q`` 0, the default 1, ``-v`` 2, ``--debug`` 3
        (cliff's option, which osc-lib raises to 3 on ``--debug``)."""
        level = getattr(getattr(self.app, 'options', None), 'verbose_level',
                        1)
        return level if isinstance(level, int) else 1

    def run(self, parsed_args):
        from osc_nodeops.ops import events
        has_file = hasattr(parsed_args, 'events_file')
        try:
            self._sink = events.Sink(
                self.app.stderr, getattr(parsed_args, 'events_file', None),
                step=((getattr(self, 'cmd_name', None) or '').split()
                      or [None])[-1],
                compute=lambda: self.conn.compute,
                # the live block: commands with --events (long runs)
                live=None if has_file else False,
                verbose=self.verbose_level())
        except errors.NodeOpsError as exc:
            return self._say_error(exc, exc.exit_status)
        try:
            with self._sink:
                return super(_NodeOpsCommand, self).run(parsed_args)
        finally:
            self._sink = None

    def say(self, message):
        if self._sink is not None:
            self._sink.say(message)  # after the notes, above the block
        else:
            super(_NodeOpsCommand, self).say(message)

    def own_defaults(self):
        """``{dest: default}`` of this command's own options and
        arguments (not the output formatter's, which cliff adds)."""
        theirs = {act.dest for act in
                  super(_NodeOpsCommand, self).get_parser('x')._actions}
        return {act.dest: act.default
                for act in self.get_parser('x')._actions
                if act.dest not in theirs}

    def spelling(self, dest):
        """How the option of ``dest`` is written on the command line."""
        for act in self.get_parser('x')._actions:
            if act.dest == dest and act.option_strings:
                return act.option_strings[-1]
        return dest

    def _escaping(self, parsed_args):
        """The output begins: end the live block; True when tenant and
        guest strings must reach the terminal escaped (issue 21.6): every
        format but JSON and YAML, which stay exact for scripts.  Each
        leaf base calls it in its ``produce_output``."""
        if self._sink is not None:
            self._sink.close()  # the block ends before the rows
        return getattr(parsed_args, 'formatter', None) not in _EXACT_FORMATS

    def report_rows(self, report):
        """Columns and rows of an engine report (drain, undrain,
        recover-all), and its exit status (``runtime.Report.exit_status``:
        1 unless the report is ok, 130 when a signal stopped the run; the
        rows still say what is known)."""
        from osc_nodeops.ops import engine
        self.exit_status = report.exit_status
        # An error after rows were gathered: the rows, then the error.
        self.error_after_rows = getattr(report, 'error', None)
        return engine.ROW_COLUMNS, [item.row() for item in report.items]


class NodeOpsLister(_NodeOpsCommand, command.Lister):
    """A Lister whose exit status tells whether everything was done."""

    def produce_output(self, parsed_args, column_names, data):
        formatter = getattr(parsed_args, 'formatter', None)
        escaping = self._escaping(parsed_args)
        data = (_cells(row, formatter, escaping) for row in data)
        return super(NodeOpsLister, self).produce_output(
            parsed_args, column_names, data)


class NodeOpsShowOne(_NodeOpsCommand, command.ShowOne):
    """A ShowOne whose exit status tells whether everything was done.

    Like every command here, tenant strings reach a table, ``-f value``,
    ``-f shell`` and ``-f csv`` through ``terminal.printable``; ``-f
    json`` and ``-f yaml`` keep them exact.

    ``-f shell`` and ``-f value`` print dict and list fields as osc-lib
    shows them to people (``ACTIVE='2', SHUTOFF='1'``), not as Python
    reprs.  ``-f shell`` output is meant for ``eval``; cliff quotes each
    value in double quotes and escapes only ``"``.  Server and port names
    are tenant data: ``$``, backquote and backslash are escaped too, so that
    eval assigns them and runs nothing.
    """

    def produce_output(self, parsed_args, column_names, data):
        formatter = getattr(parsed_args, 'formatter', None)
        data = _cells(data, formatter, self._escaping(parsed_args))
        return super(NodeOpsShowOne, self).produce_output(
            parsed_args, column_names, data)


_EXACT_FORMATS = ('json', 'yaml')
#: Formats that print a list or dict field as people read it
#: (``ACTIVE='2', SHUTOFF='1'``), not as a Python repr.
_PLAIN_FORMATS = ('shell', 'value', 'csv')


def _cells(row, formatter, escaping):
    """A row (or a ShowOne's values) as every command hands it to cliff:

    - "nothing" (None or an empty string) is one thing, as in OSC: empty
      in a table, ``-f value``, ``-f csv`` and ``-f shell``, null in
      ``-f json`` and ``-f yaml``;
    - a list or dict field (a cliff ``FormattableColumn``) is its shown
      form under ``-f value``, ``-f csv`` and ``-f shell``, in a Lister
      as in a ShowOne (cliff would print its Python repr), structured in
      ``-f json`` and ``-f yaml``;
    - tenant strings are escaped unless ``escaping`` is false (JSON and
      YAML stay exact)."""
    out = []
    for value in row:
        if value is None or (isinstance(value, str) and not value):
            out.append('' if escaping else None)
            continue
        if formatter in _PLAIN_FORMATS:
            value = _plain(value, shell=formatter == 'shell')
        out.append(_printable_value(value) if escaping else value)
    return tuple(out)


def _printable_value(value):
    from cliff import columns
    if isinstance(value, columns.FormattableColumn):
        return _PrintableColumn(value)
    return terminal.printable(value)


def _printable_deep(value):
    if isinstance(value, dict):
        return {_printable_deep(k): _printable_deep(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_printable_deep(v) for v in value)
    return terminal.printable(value)


def _PrintableColumn(column):
    """A cliff column whose shown forms are escaped (made lazily: cliff is
    imported by then)."""
    from cliff import columns

    class Printable(columns.FormattableColumn):
        def human_readable(self):
            return terminal.printable(str(self._value.human_readable()))

        def machine_readable(self):
            return _printable_deep(self._value.machine_readable())

    return Printable(column)


def _plain(value, shell):
    from cliff import columns
    if isinstance(value, columns.FormattableColumn):
        value = value.human_readable()
    if shell and isinstance(value, str):
        for char in ('\\', '$', '`'):
            value = value.replace(char, '\\' + char)
    return value
