"""Issue 23 items 1, 2 and 6: the drain, undrain and recover-all tables
show a default set of columns (``--long`` for the rest, every field in the
machine formats), sequences read in run order, and no row contradicts
itself."""

import csv
import io
import json

from osc_lib.cli import format_columns
import testtools
import yaml

from osc_nodeops.ops import engine
from osc_nodeops.v1 import columns
from osc_nodeops.v1 import node
from osc_nodeops.v1 import recover
from tests import tables
from tests.unit import fakes
from tests.unit.test_drain import run_command
from tests.unit.test_recover import RecoverNova

POLL = ['--poll-interval', '0.01']
RESULT_VIEW = ['ID', 'Name', 'Status Before', 'Method', 'Dest Compute',
               'Result', 'Seconds', 'Message']
PLAN_VIEW = ['ID', 'Name', 'Status Before', 'Method', 'Landing', 'Fits',
             'Ladder', 'Notes', 'Message']
EVERY_DRAIN_FIELD = ['ID', 'Name', 'Project', 'Status Before', 'Method',
                     'Source Compute', 'Dest Compute', 'Result', 'Seconds',
                     'Message', 'Blockers', 'Notes', 'Fits', 'Landing',
                     'Queue', 'Policy', 'Ladder', 'Steps', 'Blame',
                     'Blame Detail', 'Audit']
LADDER = ['live', 'abort after 600s', 'left running after 300s more',
          'retry 1 time(s) on another host']


def servers(nova, count=4, prefix='web-'):
    return [nova.add('%s%03d' % (prefix, n)) for n in range(1, count + 1)]


class TestOrderedColumn(testtools.TestCase):

    def test_osc_lib_list_column_sorts_the_ladder(self):
        # Why the ordered column: the ladder read "abort ..., live".
        self.assertEqual(
            'abort after 600s, left running after 300s more, live, '
            'retry 1 time(s) on another host',
            format_columns.ListColumn(LADDER).human_readable())

    def test_keeps_the_order(self):
        col = columns.Ordered(LADDER)
        self.assertEqual('\n'.join(LADDER), col.human_readable())
        self.assertEqual(LADDER, col.machine_readable())
        self.assertEqual(('', []), (columns.Ordered([]).human_readable(),
                                    columns.Ordered(None).machine_readable()))

    def test_planned(self):
        self.assertEqual(('c03 (planned)', 'c03'), (
            columns.Planned('c03').human_readable(),
            columns.Planned('c03').machine_readable()))
        self.assertEqual(('', None), (
            columns.Planned(None).human_readable(),
            columns.Planned(None).machine_readable()))


class TestDrainViews(testtools.TestCase):

    def drain(self, *argv, nova=None):
        if nova is None:
            nova = fakes.FakeNova()
            servers(nova)
        rc, app = run_command(node.DrainNode, nova, ['c01'] + POLL +
                              list(argv))
        return rc, app.stdout.getvalue()

    def test_default_table_shows_the_result_columns(self):
        rc, out = self.drain()
        self.assertEqual(0, rc)
        header, rows = tables.read(out)
        self.assertEqual(RESULT_VIEW, header)
        self.assertEqual({'moved'}, {r['Result'] for r in rows})
        self.assertEqual({'c02'}, {r['Dest Compute'] for r in rows})

    def test_long_shows_every_column(self):
        rc, out = self.drain('--long')
        header, rows = tables.read(out)
        self.assertEqual(EVERY_DRAIN_FIELD, header)
        # After the run, the plan's guess says it is one.
        self.assertEqual({'c02 (planned)'}, {r['Landing'] for r in rows})

    def test_dry_run_table_shows_the_plan_columns(self):
        rc, out = self.drain('--dry-run')
        self.assertEqual(0, rc)
        header, rows = tables.read(out)
        self.assertEqual(PLAN_VIEW, header)
        for row in rows:
            # The ladder in run order, one step a line.
            self.assertEqual('\n'.join(LADDER), row['Ladder'])
            self.assertEqual(('True', 'local-disk'),
                             (row['Fits'], row['Notes']))
        # Landing and each move's place in its host's queue (issue 24)
        self.assertEqual(['c02 #%d' % n for n in range(1, len(rows) + 1)],
                         [r['Landing'] for r in rows])

    def test_dry_run_long_shows_every_column(self):
        rc, out = self.drain('--dry-run', '--long')
        header, rows = tables.read(out)
        self.assertEqual(EVERY_DRAIN_FIELD, header)
        self.assertEqual({'c02'}, {r['Landing'].split()[0] for r in rows})
        self.assertEqual([str(n) for n in range(1, len(rows) + 1)],
                         [r['Queue'] for r in rows])

    def test_c_picks_any_column_without_long(self):
        rc, out = self.drain('-c', 'Name', '-c', 'Project')
        header, rows = tables.read(out)
        self.assertEqual(['Name', 'Project'], header)
        self.assertEqual({'p1'}, {r['Project'] for r in rows})

    def test_json_and_yaml_keep_every_field_and_the_ladder_order(self):
        for fmt, load in (('json', json.loads), ('yaml', yaml.safe_load)):
            for extra in ([], ['--dry-run']):
                rc, out = self.drain('-f', fmt, *extra)
                rows = load(out)
                self.assertEqual(4, len(rows))
                for row in rows:
                    # (cliff's YAML sorts the keys)
                    self.assertEqual(
                        EVERY_DRAIN_FIELD if fmt == 'json' else
                        sorted(EVERY_DRAIN_FIELD), list(row), fmt)
                    self.assertEqual(LADDER, row['Ladder'])
                    self.assertEqual('c02', row['Landing'])

    def test_csv_and_value_keep_every_column(self):
        rc, out = self.drain('-f', 'csv')
        lines = list(csv.reader(io.StringIO(out)))
        self.assertEqual(EVERY_DRAIN_FIELD, lines[0])
        rc, out = self.drain('-f', 'value')
        line = out.splitlines()[0]
        self.assertIn(' live ', line)
        self.assertIn('c02', line)
        self.assertIn('p1', line)  # Project, a --long column in a table

    def test_six_server_dry_run_fits_160_columns(self):
        # The functional test's shape (tests/functional/test_drain_plan.py
        # test_dry_run_table_fits_and_reads_in_order): six servers named
        # like the rig's, no --max-width, not a terminal.
        nova = fakes.FakeNova()
        servers(nova, 6, prefix='ft-plan-%s' % ('a' * 5))
        rc, out = self.drain('--dry-run', nova=nova)
        widest = max(len(line) for line in out.splitlines())
        self.assertLessEqual(widest, 160, out)
        header, rows = tables.read(out)
        self.assertEqual(6, len(rows))

    def test_the_default_table_is_less_than_half_as_wide(self):
        # --long is the table every run printed before issue 23.
        rc, short = self.drain()
        rc, long = self.drain('--long')
        self.assertGreater(max(map(len, long.splitlines())),
                           2 * max(map(len, short.splitlines())))


class TestDrainRows(testtools.TestCase):
    """Issue 23 item 6: rows that contradicted themselves."""

    def rows(self, nova, *argv):
        rc, app = run_command(node.DrainNode, nova, ['c01'] + POLL +
                              list(argv) + ['-f', 'json'])
        return rc, {r['Name']: r for r in json.loads(app.stdout.getvalue())}

    def test_blockers_only_block_notes_are_notes(self):
        nova = fakes.FakeNova()
        nova.add('plain')
        nova.add('held', is_locked=True, locked_reason='db migration')
        rc, rows = self.rows(nova, '--dry-run')
        self.assertEqual([], rows['plain']['Blockers'])
        self.assertEqual(['local-disk'],
                         [r['code'] for r in rows['plain']['Notes']])
        self.assertEqual(['locked'],
                         [r['code'] for r in rows['held']['Blockers']])
        self.assertEqual(['local-disk'],
                         [r['code'] for r in rows['held']['Notes']])
        for row in rows.values():
            self.assertTrue(all(r['blocks'] for r in row['Blockers']))
            self.assertFalse(any(r['blocks'] for r in row['Notes']))

    def test_a_skip_says_its_reason_once(self):
        nova = fakes.FakeNova()
        a = nova.add('a')
        rc, rows = self.rows(nova, '--exclude', a.id)
        row = rows['a']
        self.assertEqual(('skipped', 'excluded by --exclude'),
                         (row['Result'], row['Message']))
        # nothing: null in JSON, blank in a table (doc/source/cli/options.rst)
        self.assertIsNone(row['Blame Detail'])

    def test_a_different_blame_detail_is_kept(self):
        nova = fakes.FakeNova()
        nova.add('e', status='ERROR')
        rc, rows = self.rows(nova)
        row = rows['e']
        self.assertEqual('pre-existing', row['Blame'])
        self.assertEqual('status ERROR before the drain', row['Blame Detail'])
        self.assertNotIn(row['Blame Detail'], row['Message'])


class TestOtherCommands(testtools.TestCase):

    def test_undrain_default_and_long(self):
        nova = fakes.FakeNova()
        from tests.unit.test_drain import drained_away
        drained_away(nova, 'a')
        argv = ['c01', '--migrate-back'] + POLL
        rc, app = run_command(node.UndrainNode, nova, argv)
        header, rows = tables.read(app.stdout.getvalue())
        self.assertEqual(RESULT_VIEW, header)
        self.assertEqual('moved', rows[0]['Result'])
        drained_away(nova, 'b')
        rc, app = run_command(node.UndrainNode, nova, argv + ['--long'])
        header, rows = tables.read(app.stdout.getvalue())
        self.assertEqual(list(engine.ROW_COLUMNS), header)

    def test_recover_all_default_long_and_json(self):
        nova = RecoverNova()
        nova.add('a', power_state=0)
        argv = ['c01', '--timeout', '5'] + POLL
        rc, app = run_command(recover.RecoverAll, nova, argv)
        header, rows = tables.read(app.stdout.getvalue())
        self.assertEqual(RESULT_VIEW, header)
        rc, app = run_command(recover.RecoverAll, nova, argv + ['--long'])
        header, rows = tables.read(app.stdout.getvalue())
        self.assertEqual(list(engine.ROW_COLUMNS), header)
        rc, app = run_command(recover.RecoverAll, nova, argv + ['-f',
                                                                'json'])
        [row] = json.loads(app.stdout.getvalue())
        self.assertEqual(list(engine.ROW_COLUMNS), list(row))

    def test_show_keeps_the_order_of_its_lists(self):
        cmd = node.ShowNode(None, None)
        names, values = cmd.format({'Migrations In Progress': ['b', 'a']})
        # One line: -f value and -f shell print a ShowOne field as shown.
        self.assertEqual(('b, a', ['b', 'a']), (
            values[0].human_readable(), values[0].machine_readable()))
