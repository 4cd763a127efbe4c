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
            # ``code``: a pre-flight note's (issue 23.3)
            self.assertEqual({'time', 'host', 'server', 'step', 'state',
                              'message'}, set(rec) - {'server_name', 'code'})
            self.assertRegex(rec['time'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
        steps = [r['step'] for r in records]
        self.assertIn('drain', steps)
        self.assertIn('undrain', steps)
        self.assertLess(steps.index('drain'), steps.index('undrain'))
        moved = [(r['step'], r['host']) for r in records
                 if r['server'] == server.id and r['state'] == 'moved']
        self.assertEqual([('drain', host), ('undrain', host)], moved)
        notes = [r['code'] for r in records
                 if r['server'] == server.id and r['state'] == 'preflight']
        self.assertEqual(1, notes.count('local-disk'), notes)  # once
        self.assertEqual(host, self.admin_conn.compute.get_server(
            server.id).compute_host)


class TestEventsFilePlantedLink(base.FunctionalTestCase):
    """Issue 21.2 on the rig: a local user's link in a shared sticky
    directory (theirs, as /tmp/x) does not make root's drain append to
    root's file."""

    def test_root_drain_refuses_a_planted_link(self):
        if os.geteuid() != 0:
            self.skipTest('needs root (the attack is on root)')
        host = self.state['compute_hosts'][0]
        self.addCleanup(self.enable_computes, host)
        tmp = self.useFixture(fixtures.TempDir()).path
        os.chmod(tmp, 0o755)
        victim = os.path.join(tmp, 'bashrc')  # root's start-up file
        with open(victim, 'w') as f:
            f.write('# root\n')
        shared = os.path.join(tmp, 'x')
        os.mkdir(shared)
        os.chmod(shared, 0o1777)
        os.chown(shared, 65534, 65534)  # nobody's /tmp/x
        link = os.path.join(shared, 'events.jsonl')
        os.symlink(victim, link)
        os.chown(link, 65534, 65534, follow_symlinks=False)
        res = self.openstack('compute', 'node', 'drain', host, '--events',
                             link, '-f', 'json', check=False)
        self.assertEqual(2, res.returncode, res.stderr)
        self.assertEqual('', res.stdout)
        lines = res.stderr.strip().splitlines()
        self.assertEqual(1, len(lines), res.stderr)
        self.assertIn('symbolic link', lines[0])
        with open(victim) as f:
            self.assertEqual('# root\n', f.read())
        svc = [s for s in self.admin_conn.compute.services(
            binary='nova-compute') if s.host == host]
        self.assertEqual('enabled', svc[0].status)  # nothing done


class TestTenantStringsEscaped(base.FunctionalTestCase):
    """Issue 21.6 on the rig: a project writes an escape sequence into the
    drain marker of its own server (nova refuses control characters in
    names, not in metadata); the admin's undrain quotes it in the row's
    message.  The table and stderr carry no ESC byte, ``-f json`` the exact
    text."""

    EVIL = '\x1b]0;pwned\x07\x1b[2J'

    def test_marker_escaped_on_the_terminal_exact_in_json(self):
        srv = self.create_server(host='c02', conn=self.demo_conn)
        self.demo_conn.compute.set_server_metadata(srv.id, **{
            'nodeops:origin': 'c01',
            'nodeops:drain': 'method=live from=c01 migration=%s' %
                             self.EVIL})
        res = self.openstack('compute', 'node', 'undrain', 'c01',
                             '--migrate-back', '-f', 'table', check=False)
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertIn(srv.id, res.stdout)
        for stream in (res.stdout, res.stderr):
            self.assertNotIn('\x1b', stream)
            self.assertNotIn('\x07', stream)
        self.assertIn('\\x1b]0;pwned\\x07\\x1b[2J', res.stdout)
        rows = self.openstack('compute', 'node', 'undrain', 'c01',
                              '--migrate-back', parse_json=True)
        [row] = [r for r in rows if r['ID'] == srv.id]
        self.assertIn('no migration %s of this server' % self.EVIL,
                      row['Message'])
        self.assertEqual('c02', self.admin_conn.compute.get_server(
            srv.id).compute_host)
