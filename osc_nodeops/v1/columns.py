"""How the wide reports are shown: the columns a table shows by default
(``--long`` for the rest), and the cliff columns of sequences and plans.

OSC's rule: "only the most often used columns are shown by default"
(``server list`` and its ``--long``).  A command that mixes in
:class:`Views` names its default columns; ``take_action`` still returns
every column, and the view is chosen at output time:

- ``-f table`` (the default): the command's view (``view()``, by default
  ``default_columns``); ``--long``, or ``-c`` naming any column, shows
  them all (``-c`` then picks among all of them).
- ``-f json``, ``-f yaml``, ``-f csv``, ``-f value``: every column, always.
  Scripts read these; a field they read never depends on ``--long``, and
  the csv and value positions stay those of the whole row.

Only cheap imports here: cliff and osc-lib are loaded by ``openstack``.
"""

from cliff import columns
from osc_lib.command import command

#: The formatter whose columns follow the view; every other gets them all.
VIEWED_FORMAT = 'table'

#: The default columns of an engine report's rows (``engine.ROW_COLUMNS``:
#: drain, undrain, recover-all): what happened to each server.
RESULT_VIEW = ('ID', 'Name', 'Status Before', 'Method', 'Dest Compute',
               'Result', 'Seconds', 'Message')


class Ordered(columns.FormattableColumn):
    """A sequence in its own order (a ladder, the steps of a move): one
    item a line in a table, the list as it is in ``-f json``.  osc-lib's
    ``ListColumn`` sorts, which puts ``abort`` before ``live``."""

    separator = '\n'

    def human_readable(self):
        return self.separator.join(str(v) for v in self._value or ())

    def machine_readable(self):
        return list(self._value or ())


class OrderedLine(Ordered):
    """An ``Ordered`` on one line (``a, b``): a ShowOne field, which ``-f
    value`` and ``-f shell`` print as shown, one line each."""

    separator = ', '


class Planned(columns.FormattableColumn):
    """A value the plan guessed, shown after the run beside what happened
    (``Landing`` beside ``Dest Compute``): ``c03 (planned)`` in a table,
    the bare value in ``-f json``."""

    def human_readable(self):
        if self._value is None:
            return ''
        return '%s (planned)' % self._value

    def machine_readable(self):
        return self._value


class Views(command.Lister):
    """``--long`` and the default columns of a wide table (see the module
    docstring).  A leaf lists it before ``base.NodeOpsLister``; it sets
    ``default_columns`` or overrides ``view``."""

    default_columns: tuple[str, ...] | None = None
    long_help = ('List additional fields in output (a table shows the most '
                 'used ones; -f json, yaml, csv and value give every field)')

    def get_parser(self, prog_name):
        parser = super(Views, self).get_parser(prog_name)
        parser.add_argument('--long', action='store_true', default=False,
                            help=self.long_help)
        return parser

    def view(self, parsed_args, column_names):
        """The columns a table shows without ``--long``; None: all."""
        return self.default_columns

    def shown_columns(self, parsed_args, column_names):
        """The columns to show, in their order, or None for all."""
        if (getattr(parsed_args, 'formatter', VIEWED_FORMAT) !=
                VIEWED_FORMAT or getattr(parsed_args, 'long', False)
                or getattr(parsed_args, 'columns', None)):
            return None
        view = self.view(parsed_args, column_names)
        if view is None:
            return None
        return tuple(c for c in view if c in column_names) or None

    def produce_output(self, parsed_args, column_names, data):
        shown = self.shown_columns(parsed_args, column_names)
        if shown is not None:
            keep = [list(column_names).index(c) for c in shown]
            column_names = shown
            data = (tuple(row[i] for i in keep) for row in data)
        return super(Views, self).produce_output(parsed_args, column_names,
                                                 data)
