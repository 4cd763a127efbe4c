"""``openstack compute node volumes HOST``: the same pairs through the API
and from the nova + cinder databases (--from-db)."""

import configparser
import uuid

import fixtures

from tests.functional import base
from tests.functional import test_faults
from tests.functional import test_recover

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


RECORD = 'nodeops:reattach:'


class TestReattachVolumes(test_faults._Interrupts, test_recover._Base):
    """``recover-all --reattach-volumes`` (reboot mode, c01 up, its
    servers running): a boot-from-volume server keeps its root volume
    (issue 20 item 9); a run killed after the detach leaves a record on the
    server, and the rerun attaches the volume again (issue 21 item 7)."""

    def records(self, server_id):
        md = self.admin_conn.compute.get_server(server_id).metadata or {}
        return {k: v for k, v in md.items() if k.startswith(RECORD)}

    def attached(self, server_id):
        return {a.volume_id: a.device for a in
                self.admin_conn.compute.volume_attachments(server_id)}

    def attach(self, server_id, vol):
        self.admin_conn.compute.create_volume_attachment(
            server_id, volume_id=vol.id)
        self.wait_for_volume(vol.id, 'in-use')

    def test_boot_from_volume_keeps_its_root_volume(self):
        # volumes first: cleanups run in reverse, the server goes first
        root = self.create_volume()
        self.admin_conn.block_storage.set_volume_bootable_status(root, True)
        data = self.create_volume()
        srv = self.admin_conn.compute.create_server(
            name='ft-bfv-%s' % uuid.uuid4().hex[:8],
            flavor_id=self._flavor_id(), networks='none',
            availability_zone='nova:c01', block_device_mapping=[{
                'boot_index': 0, 'uuid': root.id, 'source_type': 'volume',
                'destination_type': 'volume',
                'delete_on_termination': False}])
        self.addCleanup(self._delete_server, srv.id)
        srv = self.wait_for_server(srv.id, 'ACTIVE')
        self.attach(srv.id, data)
        before = self.attached(srv.id)
        self.assertEqual(srv.root_device_name, before[root.id])

        res, rows = self.recover('c01', '--reattach-volumes',
                                 '--timeout', '120')
        mine = [r for r in self.rows_for(rows, srv)
                if r['Method'] == 'reattach']
        self.assertEqual([('reattach', 'reattached')],
                         [(r['Method'], r['Result']) for r in mine],
                         res.stderr)
        self.assertIn('root volume %s (%s) left attached' % (
            root.id, before[root.id]), mine[0]['Message'])
        self.assertEqual(before, self.attached(srv.id))
        for vol in (root, data):
            v = self.admin_conn.block_storage.get_volume(vol.id)
            self.assertEqual(('in-use', [srv.id]), (
                v.status, [a['server_id'] for a in v.attachments]))
        self.assertEqual({}, self.records(srv.id))

    def test_killed_after_the_detach_the_rerun_attaches_again(self):
        vol = self.create_volume()
        srv = self.create_server(host='c01')
        self.attach(srv.id, vol)
        device = self.attached(srv.id)[vol.id]
        # Every cinder call through the proxy takes 20 s: the re-attach
        # detaches through nova, then each look at the volumes (cinder)
        # takes 20 s, so no attach can follow the detach for 20 s; the
        # command is killed as soon as the volume is available.
        self.set_faults('cinder', delay=20)
        proc = self.popen('server', 'recover-all', 'c01',
                          '--reattach-volumes', '--poll-interval', '1',
                          '--timeout', '300', '-f', 'json')
        self.wait_for_volume(vol.id, 'available', timeout=180)
        self.assertIsNone(proc.poll())
        proc.kill()  # SIGKILL: no handler, no clean-up
        proc.communicate(timeout=60)
        self.assertEqual(-9, proc.returncode)
        self.minicloud('faults', 'clear')
        # What the stopped run left: the volume detached, and the record.
        self.assertEqual({}, self.attached(srv.id))
        self.assertEqual({RECORD + vol.id: device}, self.records(srv.id))

        res, rows = self.recover('c01', '--reattach-volumes',
                                 '--timeout', '120')
        mine = [r for r in self.rows_for(rows, srv)
                if r['Method'] == 'reattach']
        self.assertEqual(['reattached'], [r['Result'] for r in mine],
                         res.stderr)
        self.assertIn('interrupted run', mine[0]['Message'])
        self.assertEqual({vol.id: device}, self.attached(srv.id))
        v = self.admin_conn.block_storage.get_volume(vol.id)
        self.assertEqual('in-use', v.status)
        self.assertEqual({}, self.records(srv.id))
