"""``openstack compute node volumes HOST``: the same pairs through the API
and from the nova + cinder databases (--from-db)."""

import configparser

import fixtures

from tests.functional import base

KEYS = ('Server ID', 'Volume ID', 'Device', 'Status', 'Attach Status')


class TestNodeVolumes(base.FunctionalTestCase):

    def test_api_and_db_agree(self):
        # volumes first: cleanups run in reverse, servers go before them
        vols = [self.create_volume() for _ in range(2)]
        server = self.create_server(host='c02')
        other = self.create_server(host='c01')
        for vol in vols:
            self.admin_conn.compute.create_volume_attachment(
                server.id, volume_id=vol.id)
            self.wait_for_volume(vol.id, 'in-use')
        # the devices nova chose (the fake driver names them /dev/sdX)
        devices = {a.volume_id: a.device for a in
                   self.admin_conn.compute.volume_attachments(server.id)}
        self.assertEqual(2, len(set(devices.values())))
        expected = [(server.id, v.id, devices[v.id], 'in-use', 'attached')
                    for v in vols]
        api = self.openstack('compute', 'node', 'volumes', 'c02',
                             parse_json=True)
        mine = sorted(tuple(p[k] for k in KEYS) for p in api
                      if p['Server ID'] == server.id)
        self.assertEqual(sorted(expected), mine)
        self.assertNotIn(other.id, [p['Server ID'] for p in api])
        db = self.openstack(
            'compute', 'node', 'volumes', 'c02', '--from-db',
            '--nova-conf', self.state['nova_conf'],
            '--cinder-conf', self.state['cinder_conf'], parse_json=True)
        mine = sorted(tuple(p[k] for k in KEYS) for p in db
                      if p['Server ID'] == server.id)
        self.assertEqual(sorted(expected), mine)
        # after a detach the DB join skips the deleted attachment row
        self.admin_conn.compute.delete_volume_attachment(server.id,
                                                         vols[1].id)
        self.wait_for_volume(vols[1].id, 'available')
        db = self.openstack(
            'compute', 'node', 'volumes', 'c02', '--from-db',
            '--nova-conf', self.state['nova_conf'],
            '--cinder-conf', self.state['cinder_conf'], parse_json=True)
        self.assertEqual([expected[0]],
                         [tuple(p[k] for k in KEYS) for p in db
                          if p['Server ID'] == server.id])

    def test_unknown_host_and_bad_conf(self):
        res = self.openstack('compute', 'node', 'volumes', 'nope',
                             check=False)
        self.assertEqual(1, res.returncode)
        self.assertIn("no nova-compute service on host 'nope'", res.stderr)
        res = self.openstack('compute', 'node', 'volumes', 'c01',
                             '--from-db', '--nova-conf', '/nonexistent.conf',
                             check=False)
        self.assertEqual(1, res.returncode)
        self.assertIn('/nonexistent.conf', res.stderr)
        self.assertEqual('', res.stdout)

    def _url(self, conf):
        parser = configparser.RawConfigParser(strict=False)
        parser.read(self.state[conf])
        return parser.get('database', 'connection')

    def test_db_password_never_in_verbose_or_debug_output(self):
        from osc_nodeops.db import url as url_mod
        nova = self._url('nova_conf')
        cinder = self._url('cinder_conf')
        secret = url_mod.DBURL.parse(nova).password
        self.assertTrue(secret)
        for flag in ('-v', '--debug'):
            res = self.openstack(flag, 'compute', 'node', 'volumes', 'c02',
                                 '--from-db', '--nova-db', nova,
                                 '--cinder-db', cinder, '-f', 'json',
                                 check=False)
            self.assertEqual(0, res.returncode, res.stderr[-3000:])
            self.assertNotIn(secret, res.stdout + res.stderr, flag)
            # osc-lib's "START with options" line, with the URL masked
            self.assertIn('START with options', res.stderr)
            self.assertIn(':***@', res.stderr)
        # from the environment instead of the command line
        self.useFixture(fixtures.EnvironmentVariable('NODEOPS_NOVA_DB',
                                                     nova))
        self.useFixture(fixtures.EnvironmentVariable('NODEOPS_CINDER_DB',
                                                     cinder))
        res = self.openstack('--debug', 'compute', 'node', 'volumes', 'c02',
                             '--from-db', '--nova-conf', '/nonexistent',
                             '--cinder-conf', '/nonexistent', '-f', 'json',
                             check=False)
        self.assertEqual(0, res.returncode, res.stderr[-3000:])
        self.assertNotIn(secret, res.stdout + res.stderr)
        # a wrong password is an error that names nothing of it
        bad = nova.replace(':%s@' % secret, ':%s/x@' % secret, 1)
        self.assertNotEqual(nova, bad)
        res = self.openstack('-v', 'compute', 'node', 'volumes', 'c02',
                             '--from-db', '--nova-db', bad, '--cinder-db',
                             cinder, check=False)
        self.assertEqual(1, res.returncode)
        self.assertNotIn(secret, res.stdout + res.stderr)
        self.assertIn('not a valid URL', res.stderr)
