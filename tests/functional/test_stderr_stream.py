"""The people's stream on stderr on the minicloud (issue 23 item 3).

"No line twice" is exact: the list of a drain's stderr lines has no
duplicate (the pre-flight notes were said by the capacity pre-pass and by
each host's plan; each per-server note is now in one ``CODE: N servers
(...)`` line).  ``openstack -q``: every stderr line begins ``warning: ``
or ``error: `` (``ops.events.is_warning_or_error``).
"""

import collections
import json
import os

import fixtures

from osc_nodeops.ops import events
from tests.functional import base
from tests.functional import test_drain_plan


def repeated(lines):
    return {k: n for k, n in collections.Counter(lines).items() if n > 1}


class TestStderrStream(base.FunctionalTestCase):

    # The placement fill and the flavor of the pre-flight's tests.
    fill = test_drain_plan.TestDrainPlan.fill
    providers = test_drain_plan.TestDrainPlan.providers
    flavor = test_drain_plan.TestDrainPlan.flavor
    boot = test_drain_plan.TestDrainPlan.boot

    def setUp(self):
        super(TestStderrStream, self).setUp()
        self.addCleanup(self.enable_computes, 'c01', 'c02', 'c03')
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def run_cli(self, *argv, expect=0):
        res = self.openstack(*argv, '-f', 'json', check=False)
        self.assertEqual(expect, res.returncode,
                         'exit %d\nstdout: %s\nstderr: %s' % (
                             res.returncode, res.stdout, res.stderr))
        return ({r['ID']: r for r in json.loads(res.stdout)},
                res.stderr.splitlines())

    def test_a_drain_says_no_line_twice(self):
        servers = self.create_servers(4)
        ids = {s.id for s in servers}
        path = os.path.join(self.tmp, 'drain.jsonl')
        rows, lines = self.run_cli('compute', 'node', 'drain', 'c01',
                                   '--poll-interval', '1', '--events', path)
        self.assertEqual({'moved'}, {rows[i]['Result'] for i in ids}, lines)
        self.assertEqual({}, repeated(lines), lines)
        # Image-backed servers: one local-disk line for the four of them.
        notes = [ln for ln in lines if ln.startswith('local-disk: ')]
        self.assertEqual(1, len(notes), lines)
        self.assertTrue(notes[0].startswith('local-disk: 4 servers ('),
                        notes)
        # About two lines per server moved (start, moved), a few per host.
        for s in servers:
            self.assertEqual(2, sum(1 for ln in lines
                                    if ln.startswith('%s (%s) ' % (
                                        s.name, s.id))), lines)
        self.assertLessEqual(len(lines), 2 * len(servers) + 8, lines)
        self.assertEqual([], [ln for ln in lines if ' issued: ' in ln])
        # The --events file keeps each server's note, once.
        with open(path) as f:
            recs = [json.loads(line) for line in f]
        local = [r['server'] for r in recs if r.get('code') == 'local-disk']
        self.assertEqual(sorted(ids), sorted(local))
        self.assertEqual({}, repeated(
            (r['server'], r['message']) for r in recs
            if r['state'] == 'preflight'))

        # -v: each step of each move (and still no line twice).
        rows, lines = self.run_cli('-v', 'compute', 'node', 'undrain', 'c01',
                                   '--migrate-back', '--poll-interval', '1')
        self.assertEqual({'moved'}, {rows[i]['Result'] for i in ids}, lines)
        for s in servers:  # said from -v on only
            self.assertTrue(any(ln.startswith('%s (%s) issued: ' % (
                s.name, s.id)) for ln in lines), lines)
        self.assertEqual({}, repeated(ln for ln in lines
                                      if ln.startswith(tuple(
                                          '%s (' % s.name
                                          for s in servers))), lines)

    def test_quiet_says_only_warnings_and_errors(self):
        self.create_servers(2)
        rows, lines = self.run_cli('-q', 'compute', 'node', 'drain', 'c01',
                                   '--poll-interval', '1')
        self.assertEqual({'moved'}, {r['Result'] for r in rows.values()})
        self.assertEqual([], [ln for ln in lines
                              if not events.is_warning_or_error(ln)])
        self.enable_computes('c01')

        # A drain the pre-flight refuses: its error line, nothing else.
        [big] = self.boot(self.flavor(ram=2048))
        self.fill('c02', 1024)
        self.fill('c03', 1024)
        rows, lines = self.run_cli('-q', 'compute', 'node', 'drain', 'c01',
                                   '--poll-interval', '1', expect=1)
        self.assertEqual('not-started', rows[big.id]['Result'])
        self.assertTrue(lines)
        self.assertEqual([], [ln for ln in lines
                              if not events.is_warning_or_error(ln)])
        self.assertTrue(any(ln.startswith('error: refused: ')
                            for ln in lines), lines)
