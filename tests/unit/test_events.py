"""``--events FILE`` (JSON lines) and the live progress counters."""

import json
import os
from unittest import mock

import fixtures
import testtools

from osc_nodeops import errors
from osc_nodeops.ops import drain
from osc_nodeops.ops import engine
from osc_nodeops.ops import events
from osc_nodeops.ops import runtime
from tests.unit import fakes


class TestEventLog(testtools.TestCase):

    def test_lines_appended_and_flushed(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        fresh = os.path.join(tmp, 'new.jsonl')
        events.EventLog(fresh).close()
        self.assertEqual(0o600, os.stat(fresh).st_mode & 0o777)
        path = os.path.join(tmp, 'ev.jsonl')
        with open(path, 'w') as f:
            f.write('{"old": 1}\n')
        log = events.EventLog(path, step='drain')
        item = engine.PlanItem(fakes.server(name='vm1', host='c01'))
        log(runtime.Event('start', 'live (attempt 1)', item, host='c01'))
        with open(path) as f:  # flushed before close
            self.assertEqual(2, len(f.read().splitlines()))
        log(runtime.Event('service', 'c01 disabled', host='c01'))
        log.close()
        with open(path) as f:
            lines = [json.loads(x) for x in f]
        self.assertEqual({'old': 1}, lines[0])
        self.assertEqual(('c01', item.id, 'drain', 'start', 'vm1'), (
            lines[1]['host'], lines[1]['server'], lines[1]['step'],
            lines[1]['state'], lines[1]['server_name']))
        self.assertIsNone(lines[2]['server'])
        for rec in lines[1:]:
            self.assertEqual({'time', 'host', 'server', 'step', 'state',
                              'message'}, set(rec) - {'server_name'})

    def test_unwritable_is_a_usage_error(self):
        self.assertRaises(errors.UsageError, events.EventLog,
                          '/nonexistent/dir/ev.jsonl')


class TestProgress(testtools.TestCase):

    def test_counts(self):
        now = [0.0]
        p = events.Progress(clock=lambda: now[0])
        live = drain.LiveMigrate()
        items = [engine.PlanItem(fakes.server(name='s%d' % i), live)
                 for i in range(4)]
        p.feed(runtime.Event('hosts-total', '2'))
        p.feed(runtime.Event('wave', '1: c01'))
        p.feed(runtime.Event('plan', 'c01: 5 server(s), 3 to move, 2 '
                                     'skipped'))
        self.assertIn('servers moved 0/3', p.lines()[0])
        p.feed(runtime.Event('plan-count', '4'))
        for it in items[:2]:
            p.feed(runtime.Event('start', 'live', it))
        p.set_percent(items[0].id, 40)
        now[0] = 10.0
        p.feed(runtime.Event(live.success, 'ok', items[1]))
        head, *flight = p.lines()
        self.assertIn('hosts 0/2', head)
        self.assertIn('wave 1: c01', head)
        self.assertIn('servers moved 1/4', head)
        self.assertIn('in flight 1', head)
        self.assertIn('ETA ~0:30', head)
        self.assertEqual(['  s0 (%s) 40%%' % items[0].id], flight)
        p.feed(runtime.Event('failed', 'boom', items[0]))
        self.assertIn('failed 1', p.lines()[0])

    def test_migration_percent(self):
        m = mock.Mock(memory_total_bytes=100, memory_processed_bytes=50,
                      memory_remaining_bytes=50, disk_total_bytes=0,
                      disk_processed_bytes=None, disk_remaining_bytes=None)
        self.assertEqual(50, events.migration_percent(m))
        m.memory_total_bytes = None
        self.assertIsNone(events.migration_percent(m))


class TestEventsOption(testtools.TestCase):

    def test_drain_events_file(self):
        from osc_nodeops.v1 import node
        from tests.unit.test_drain import FakeApp
        nova = fakes.FakeNova()
        nova.add('a')
        nova.add('b')
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'ev.jsonl')
        app = FakeApp(nova)
        cmd = node.DrainNode(app, None)
        cmd.cmd_name = 'compute node drain'
        args = cmd.get_parser('drain').parse_args(
            ['c01', '--events', path, '--poll-interval', '0.01',
             '-f', 'json'])
        self.assertEqual(0, cmd.run(args))
        with open(path) as f:
            recs = [json.loads(line) for line in f]
        self.assertTrue(all(r['step'] == 'drain' for r in recs))
        self.assertTrue(all(r['host'] == 'c01' for r in recs), recs)
        done = [r for r in recs if r['server'] and r['state'] == 'moved']
        self.assertEqual(2, len(done), recs)
        # people still get their lines (stderr, not a tty), stdout the rows
        self.assertIn('moved', app.stderr.getvalue())
        self.assertEqual(2, len(json.loads(app.stdout.getvalue())))

    def test_unwritable_events_file_exit_2(self):
        from osc_nodeops.v1 import node
        from tests.unit.test_drain import FakeApp
        nova = fakes.FakeNova()
        app = FakeApp(nova)
        cmd = node.DrainNode(app, None)
        args = cmd.get_parser('drain').parse_args(
            ['c01', '--events', '/nonexistent/x.jsonl'])
        self.assertEqual(2, cmd.run(args))
        self.assertIn('--events /nonexistent/x.jsonl', app.stderr.getvalue())
        self.assertEqual('enabled', nova.services['c01'].status)
