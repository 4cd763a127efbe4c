"""``--events FILE`` of drain and undrain on the minicloud: one JSON object
per line, appended, every move in it."""

import json
import os

import fixtures

from tests.functional import base


class TestEventsFile(base.FunctionalTestCase):

    def test_drain_and_undrain_append_json_lines(self):
        host = self.state['compute_hosts'][0]
        self.addCleanup(self.enable_computes, host)
        server = self.create_server(host=host)
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'events.jsonl')
        with open(path, 'w') as f:
            f.write('{"before": true}\n')
        self.openstack('compute', 'node', 'drain', host, '--events', path,
                       '-f', 'json')
        self.openstack('compute', 'node', 'undrain', host, '--migrate-back',
                       '--events', path, '-f', 'json')
        with open(path) as f:
            lines = f.read().splitlines()
        self.assertEqual({'before': True}, json.loads(lines[0]))
        records = [json.loads(line) for line in lines[1:]]  # each a line
        for rec in records:
            self.assertEqual({'time', 'host', 'server', 'step', 'state',
                              'message'}, set(rec) - {'server_name'})
            self.assertRegex(rec['time'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
        steps = [r['step'] for r in records]
        self.assertIn('drain', steps)
        self.assertIn('undrain', steps)
        self.assertLess(steps.index('drain'), steps.index('undrain'))
        moved = [(r['step'], r['host']) for r in records
                 if r['server'] == server.id and r['state'] == 'moved']
        self.assertEqual([('drain', host), ('undrain', host)], moved)
        self.assertEqual(host, self.admin_conn.compute.get_server(
            server.id).compute_host)
