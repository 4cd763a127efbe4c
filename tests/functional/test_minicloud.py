"""Smoke test of the minicloud itself (issue 2, "Done when").

Everything is checked through the APIs: a server with a neutron port goes
ACTIVE with its port bound and ACTIVE; live migration, cold migration of a
stopped server with resize confirm, hard reboot, and evacuation from a
killed, forced-down compute host all land where nova says they did.
"""

import json
import os
import subprocess
import time

from openstack import exceptions as sdk_exc

from tests.functional import base


class TestMinicloud(base.FunctionalTestCase):

    def _compute_service(self, host):
        svcs = list(self.admin_conn.compute.services(
            binary='nova-compute', host=host))
        self.assertEqual(1, len(svcs), 'nova-compute services on %s' % host)
        return svcs[0]

    def _wait_service(self, host, state, timeout=90):
        deadline = time.time() + timeout
        while True:
            svc = self._compute_service(host)
            if svc.state == state:
                return svc
            if time.time() > deadline:
                self.fail('nova-compute on %s not %s within %d s (is %s)'
                          % (host, state, timeout, svc.state))
            time.sleep(1)

    def _wait_port(self, port_id, host, timeout=60):
        deadline = time.time() + timeout
        while True:
            port = self.admin_conn.network.get_port(port_id)
            if port.binding_host_id == host and port.status == 'ACTIVE':
                return port
            if time.time() > deadline:
                self.fail('port %s not ACTIVE on %s within %d s: status %s,'
                          ' host %r' % (port_id, host, timeout, port.status,
                                        port.binding_host_id))
            time.sleep(1)

    def _actions(self, server):
        return [a.action for a in
                self.admin_conn.compute.server_actions(server.id)]

    def _restore_c03(self):
        self.minicloud('start-compute', 'c03')
        svc = self._compute_service('c03')
        self.admin_conn.compute.update_service_forced_down(
            svc, 'c03', 'nova-compute', False)
        self._wait_service('c03', 'up')

    def test_rig_status_and_clouds(self):
        out = self.minicloud('status').stdout
        self.assertIn('nova-compute-c03', out)
        self.assertNotIn(' down', out)
        # The demo cloud is a non-admin user: all-projects listing of
        # services is refused, its own server list works.
        self.openstack('server', 'list', cloud='minicloud-demo')
        res = self.openstack('compute', 'service', 'list',
                             cloud='minicloud-demo', check=False)
        self.assertNotEqual(0, res.returncode)
        services = self.openstack('compute', 'service', 'list',
                                  parse_json=True)
        hosts = {s['Host'] for s in services if s['Binary'] == 'nova-compute'}
        self.assertEqual({'c01', 'c02', 'c03'}, hosts)

    def test_volume_attach_detach(self):
        vol = self.create_volume()
        server = self.create_server(host='c02')
        self.admin_conn.compute.create_volume_attachment(
            server.id, volume_id=vol.id)
        vol = self.wait_for_volume(vol.id, 'in-use')
        self.assertEqual(1, len(vol.attachments))
        att = vol.attachments[0]
        self.assertEqual((server.id, 'c02'),
                         (att['server_id'], att['host_name']))
        attached = [a.volume_id for a in
                    self.admin_conn.compute.volume_attachments(server.id)]
        self.assertEqual([vol.id], attached)
        self.admin_conn.compute.delete_volume_attachment(server.id, vol.id)
        vol = self.wait_for_volume(vol.id, 'available')
        self.assertEqual([], vol.attachments)

    def test_restart_compute_then_hard_reboot(self):
        # restart-compute is a rebooted hypervisor: the fake driver has
        # forgotten the guest, nova has not; a hard reboot re-creates it.
        server = self.create_server(host='c02')
        self.addCleanup(self.minicloud, 'start-compute', 'c02')
        self.minicloud('restart-compute', 'c02')
        self._wait_service('c02', 'up', timeout=30)
        self.admin_conn.compute.reboot_server(server.id, 'HARD')
        server = self.wait_for_server(server.id, 'ACTIVE')
        self.assertEqual('c02', server.compute_host)
        self.assertEqual(1, server.power_state)
        self.assertIn('reboot', self._actions(server))

    def test_two_hosts_restart_at_once(self):
        # Issue 24: a maintain wave runs its hosts' steps at once, but the
        # rig took one state-changing command at a time, so two hosts'
        # `restart-compute` ran one after the other (about 7 s each).
        # Now a host's command waits only for that host's: both old
        # nova-compute processes are gone before either command ends.
        def pid(host):
            path = os.path.join(base.STATE_DIR, 'pids',
                                'nova-compute-%s.pid' % host)
            with open(path) as f:
                return int(f.read().split()[0])
        hosts = ('c02', 'c03')
        old = {h: pid(h) for h in hosts}
        for h in hosts:
            self.addCleanup(self.minicloud, 'start-compute', h)
        procs = [subprocess.Popen(
            [base.MINICLOUD, 'restart-compute', h], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True) for h in hosts]
        both_gone = False
        while all(p.poll() is None for p in procs):
            both_gone = both_gone or not any(
                os.path.exists('/proc/%d' % old[h]) for h in hosts)
            time.sleep(0.05)
        for p in procs:
            out = p.communicate(timeout=180)[0]
            self.assertEqual(0, p.returncode, out)
        self.assertTrue(both_gone, 'a restart-compute ended before the '
                        'other host\'s nova-compute was killed')
        for h in hosts:
            self.assertNotEqual(old[h], pid(h))
            self._wait_service(h, 'up', timeout=30)

    def test_smoke(self):
        for h in self.state['compute_hosts']:
            svc = self._compute_service(h)
            self.assertEqual(('enabled', 'up', False),
                             (svc.status, svc.state, svc.is_forced_down),
                             'compute %s must be enabled and up for the '
                             'smoke test' % h)
        net_id = self.state['networks']['public']['id']
        port = self.admin_conn.network.create_port(
            network_id=net_id, name='ft-minicloud-port')
        self.addCleanup(self.admin_conn.network.delete_port, port.id,
                        ignore_missing=True)

        # Three servers on c01: one with a neutron port, one stopped.
        with_port = self.create_server(host='c01', port=port, wait=False)
        plain = self.create_server(host='c01', wait=False)
        stopped = self.create_server(host='c01', wait=False)
        with_port, plain, stopped = self._wait_all(
            [with_port.id, plain.id, stopped.id], 'ACTIVE')
        for s in (with_port, plain, stopped):
            self.assertEqual('c01', s.compute_host)
        self._wait_port(port.id, 'c01')
        self.admin_conn.compute.stop_server(stopped.id)
        stopped = self.wait_for_server(stopped.id, 'SHUTOFF')

        # Live-migrate the server with the port to c02: the port follows.
        self.admin_conn.compute.live_migrate_server(
            with_port.id, host='c02', block_migration='auto')
        with_port = self._wait_host(with_port.id, 'c02', 'ACTIVE')
        self._wait_port(port.id, 'c02')
        migs = list(self.admin_conn.compute.migrations(
            instance_uuid=with_port.id))
        self.assertIn('live-migration', [m.migration_type for m in migs])

        # Cold-migrate the stopped one, confirm the resize: still SHUTOFF.
        self.admin_conn.compute.migrate_server(stopped.id, host='c02')
        self.wait_for_server(stopped.id, 'VERIFY_RESIZE')
        self.admin_conn.compute.confirm_server_resize(stopped.id)
        stopped = self._wait_host(stopped.id, 'c02', 'SHUTOFF')

        # Hard reboot.
        self.admin_conn.compute.reboot_server(plain.id, 'HARD')
        plain = self.wait_for_server(plain.id, 'ACTIVE')
        self.assertIn('reboot', self._actions(plain))
        self.assertEqual('c01', plain.compute_host)

        # Evacuate from c03: refused (400) while c03 is up, works once its
        # process is dead and the service is forced down.
        victim = self.create_server(host='c03')
        self.assertRaises(
            sdk_exc.BadRequestException,
            self.admin_conn.compute.evacuate_server, victim.id)
        self.addCleanup(self._restore_c03)
        self.minicloud('kill-compute', 'c03')
        svc = self._compute_service('c03')
        self.admin_conn.compute.update_service_forced_down(
            svc, 'c03', 'nova-compute', True)
        self._wait_service('c03', 'down', timeout=10)
        self.admin_conn.compute.evacuate_server(victim.id)
        deadline = time.time() + 120
        while True:
            victim = self.admin_conn.compute.get_server(victim.id)
            if (victim.compute_host not in ('c03', None)
                    and victim.task_state is None
                    and victim.status in ('ACTIVE', 'SHUTOFF')):
                break
            if victim.status == 'ERROR' or time.time() > deadline:
                self.fail('evacuation did not finish: status %s, host %s, '
                          'task %s, fault %s' % (
                              victim.status, victim.compute_host,
                              victim.task_state, victim.fault))
            time.sleep(1)
        self.assertIn(victim.compute_host, ('c01', 'c02'))
        self.assertIn('evacuate', self._actions(victim))
        migs = [m for m in self.admin_conn.compute.migrations(
            instance_uuid=victim.id, migration_type='evacuation')]
        self.assertEqual(1, len(migs))
        self.assertEqual('c03', migs[0].source_compute)

    def _wait_host(self, server_id, host, status, timeout=120):
        deadline = time.time() + timeout
        while True:
            s = self.admin_conn.compute.get_server(server_id)
            if (s.compute_host == host and s.status == status
                    and s.task_state is None):
                return s
            if s.status == 'ERROR' or time.time() > deadline:
                self.fail('server %s not %s on %s: status %s, host %s, '
                          'task %s, fault %s' % (
                              server_id, status, host, s.status,
                              s.compute_host, s.task_state, s.fault))
            time.sleep(1)


class RigTestCase(base.FunctionalTestCase):
    """Helpers for the tests of the rig's knobs (issue 14)."""

    def live_migrate(self, server, host='c02'):
        self.admin_conn.compute.live_migrate_server(
            server.id, host=host, block_migration='auto')

    def migration(self, server, timeout=30, status=None):
        """The server's one live migration record (os-migrations)."""
        deadline = time.time() + timeout
        while True:
            migs = [m for m in self.admin_conn.compute.migrations(
                instance_uuid=server.id, migration_type='live-migration')]
            if migs and (status is None or migs[0].status in status):
                self.assertEqual(1, len(migs), migs)
                return migs[0]
            if time.time() > deadline:
                self.fail('no live migration %s of %s within %d s: %s' % (
                    status or '', server.id, timeout,
                    [m.status for m in migs]))
            time.sleep(0.2)

    def in_progress(self, server):
        """Its in-progress migration (GET /servers/ID/migrations)."""
        migs = list(self.admin_conn.compute.server_migrations(server.id))
        return migs[0] if migs else None

    def wait_settled(self, server, timeout=60):
        deadline = time.time() + timeout
        while True:
            s = self.admin_conn.compute.get_server(server.id)
            if s.task_state is None and s.status != 'MIGRATING':
                return s
            if time.time() > deadline:
                self.fail('server %s still %s/%s after %d s' % (
                    server.id, s.status, s.task_state, timeout))
            time.sleep(0.3)

    def timing(self, *args):
        self.minicloud('timing', *args)
        self.addCleanup(self.minicloud, 'timing', 'off')

    def with_behaviour(self, value, host='c01'):
        server = self.create_server(host=host)
        self.admin_conn.compute.set_server_metadata(
            server.id, **{'minicloud:live-migration': value})
        return server


class TestHypervisorTime(RigTestCase):
    """The rig's fake driver: live migrations that take time and report
    progress; abort, force-complete, never-converge, fail; timed cold
    migration (tools/minicloud/minicloud_virt.py)."""

    def test_live_migration_takes_time_with_progress(self):
        self.timing('on')   # 64 MiB at 25 MiB/s: about 2.6 s
        server = self.create_server(host='c01')
        t0 = time.time()
        self.live_migrate(server)
        seen = []
        while True:
            m = self.in_progress(server)
            if m is None:
                break
            if m.status == 'running' and m.memory_total_bytes:
                seen.append((m.memory_processed_bytes,
                             m.memory_remaining_bytes))
            time.sleep(0.2)
        server = self.wait_settled(server)
        took = time.time() - t0
        self.assertEqual(('c02', 'ACTIVE'), (server.compute_host,
                                             server.status))
        self.migration(server, status=('completed',))
        self.assertGreaterEqual(took, 2.0)
        self.assertLess(took, 15.0)
        # Several distinct samples, processed rising, remaining falling.
        distinct = sorted(set(seen))
        self.assertGreaterEqual(len(distinct), 3, seen)
        processed = [p for p, _ in seen]
        self.assertEqual(processed, sorted(processed))
        for p, r in seen:
            self.assertEqual(64 * 1024 * 1024, p + r)

    def test_never_converge_then_abort(self):
        server = self.with_behaviour('never-converge')
        self.live_migrate(server)
        mig = self.migration(server, status=('running',))
        time.sleep(5)   # the default bandwidth has sent all 64 MiB by now
        # `openstack server migration show` shows the progress (by UUID:
        # OSC 10.5.0 swaps the arguments for a numeric ID).
        shown = self.openstack(
            '--os-compute-api-version', '2.80', 'server', 'migration',
            'show', server.id, self.in_progress(server).uuid,
            parse_json=True)
        self.assertEqual('running', shown['Status'])
        total = 64 * 1024 * 1024
        self.assertEqual(total, shown['Memory Total Bytes'])
        self.assertGreater(shown['Memory Processed Bytes'], total)
        self.assertGreater(shown['Memory Remaining Bytes'], 0)
        self.openstack('--os-compute-api-version', '2.80', 'server',
                       'migration', 'abort', server.id, mig.id)
        server = self.wait_settled(server)
        self.assertEqual(('c01', 'ACTIVE'), (server.compute_host,
                                             server.status))
        self.assertEqual('cancelled',
                         self.migration(server, status=('cancelled',))
                         .status)

    def test_never_converge_force_complete(self):
        server = self.with_behaviour('never-converge')
        self.live_migrate(server)
        mig = self.migration(server, status=('running',))
        time.sleep(4)
        self.assertEqual('running', self.in_progress(server).status)
        self.openstack('--os-compute-api-version', '2.80', 'server',
                       'migration', 'force', 'complete', server.id, mig.id)
        server = self.wait_settled(server)
        self.assertEqual(('c02', 'ACTIVE'), (server.compute_host,
                                             server.status))
        self.assertEqual('completed',
                         self.migration(server, status=('completed',))
                         .status)

    def test_fail_goes_back_to_the_source(self):
        server = self.with_behaviour('fail')
        self.live_migrate(server)
        mig = self.migration(server, status=('failed', 'error'), timeout=30)
        server = self.wait_settled(server)
        self.assertEqual(('c01', 'ACTIVE', 1),
                         (server.compute_host, server.status,
                          server.power_state))
        # As libvirt when the migration job fails: 'failed'.
        self.assertEqual('failed', mig.status)

    def test_slow_metadata_and_cold_migration_time(self):
        server = self.with_behaviour('slow:4')
        t0 = time.time()
        self.live_migrate(server)
        self.migration(server, status=('completed',), timeout=30)
        self.assertGreaterEqual(time.time() - t0, 4.0)
        self.assertEqual('c02', self.wait_settled(server).compute_host)
        # Cold migration takes `timing set cold=SECONDS`.
        self.timing('set', 'cold=3')
        stopped = self.create_server(host='c01', stopped=True)
        t0 = time.time()
        self.admin_conn.compute.migrate_server(stopped.id, host='c03')
        self.wait_for_server(stopped.id, 'VERIFY_RESIZE')
        self.assertGreaterEqual(time.time() - t0, 3.0)
        self.admin_conn.compute.confirm_server_resize(stopped.id)
        self.assertEqual('c03', self.wait_for_server(
            stopped.id, 'SHUTOFF').compute_host)


class TestHypervisorRebuildTime(RigTestCase):

    def test_rebuild_takes_time(self):
        # `timing set rebuild=SECONDS`: the spawn of a rebuild (and of an
        # evacuation: the same code path in nova) takes that long.
        server = self.create_server(host='c02')
        self.timing('set', 'rebuild=4')
        t0 = time.time()
        self.admin_conn.compute.rebuild_server(server.id,
                                               image=self._image_id())
        deadline = time.time() + 30
        while self.admin_conn.compute.get_server(
                server.id).task_state is None and time.time() < deadline:
            time.sleep(0.2)
        server = self.wait_for_server(server.id, 'ACTIVE')
        self.assertGreaterEqual(time.time() - t0, 4.0)
        self.assertEqual('c02', server.compute_host)
        self.assertIn('rebuild', self._actions(server))

    def _actions(self, server):
        return [a.action for a in
                self.admin_conn.compute.server_actions(server.id)]


class TestKilledMidMigration(RigTestCase):

    def test_kill_compute_mid_migration(self):
        server = self.with_behaviour('never-converge')
        self.addCleanup(self.minicloud, 'start-compute', 'c01')
        self.live_migrate(server)
        self.migration(server, status=('running',))
        self.minicloud('kill-compute', 'c01')
        time.sleep(2)
        # What nova leaves while the host is dead ...
        s = self.admin_conn.compute.get_server(server.id)
        self.assertEqual(('MIGRATING', 'migrating', 'c01'),
                         (s.status, s.task_state, s.compute_host))
        self.assertEqual('running', self.migration(server).status)
        # ... and after it starts again: nova's start-up clean-up.
        self.minicloud('start-compute', 'c01')
        mig = self.migration(server, status=('error',), timeout=60)
        self.assertEqual('error', mig.status)
        s = self.wait_settled(server)
        self.assertEqual(('c01', None), (s.compute_host, s.task_state))


class TestRigSettings(RigTestCase):
    """`minicloud set`: nova's max_concurrent_live_migrations and the
    hosts' size (computes restart), keystone's token lifetime."""

    def _restore(self, *keys):
        self.addCleanup(self.minicloud, 'set',
                        *['%s=default' % k for k in keys])

    def test_concurrency_and_host_size(self):
        self._restore('max-concurrent-live-migrations', 'host-size')
        self.minicloud('set', 'max-concurrent-live-migrations=2',
                       'host-size=4096,4,100')
        self.assertEqual(2, json.loads(self.minicloud('settings').stdout)[
            'max_concurrent_live_migrations'])
        rp = self.admin_conn.placement.find_resource_provider('c01')
        inv = {i.resource_class: i.total for i in
               self.admin_conn.placement.resource_provider_inventories(rp)}
        self.assertEqual((4096, 4, 100), (inv['MEMORY_MB'], inv['VCPU'],
                                          inv['DISK_GB']))
        servers = [self.with_behaviour('slow:5') for _ in range(3)]
        for s in servers:
            self.live_migrate(s)
        peak = 0
        queued_seen = False
        deadline = time.time() + 60
        while time.time() < deadline:
            migs = [self.migration(s) for s in servers]
            status = [m.status for m in migs]
            peak = max(peak, status.count('running'))
            queued_seen = queued_seen or 'queued' in status
            if all(st == 'completed' for st in status):
                break
            time.sleep(0.3)
        self.assertEqual(['completed'] * 3, status)
        self.assertEqual(2, peak)
        self.assertTrue(queued_seen)

    def test_token_ttl(self):
        self._restore('token-ttl')
        self.minicloud('set', 'token-ttl=20')
        conn = base.connect('minicloud')
        self.addCleanup(conn.close)
        token = conn.auth_token
        ref = conn.session.auth.auth_ref
        life = (ref.expires - ref.issued).total_seconds()
        self.assertAlmostEqual(20, life, delta=2)
        headers = {'X-Subject-Token': token}
        ok = conn.session.get(self.state['auth_url'] + '/auth/tokens',
                              headers=headers, raise_exc=False)
        self.assertEqual(200, ok.status_code)
        time.sleep(max(0, (ref.expires - ref.issued).total_seconds()) + 2)
        gone = self.admin_conn.session.get(
            self.state['auth_url'] + '/auth/tokens', headers=headers,
            raise_exc=False)
        self.assertEqual(404, gone.status_code)
        # keystoneauth re-authenticates: the connection keeps working.
        self.assertTrue(list(conn.compute.services()))


class TestComputeReadiness(RigTestCase):
    """A nova-compute that ``minicloud`` restarted or started is ready
    when the command returns (issue 19 item 1): a server booted onto it at
    once goes ACTIVE there.  Booted before the NEW process's ``init_host``,
    nova puts it in ERROR (its start-up errors out every build that has an
    allocation on the node but no host yet); before its RPC server
    consumes, the build waits or is lost.

    The old check (the service's ``updated_at`` not older than the start,
    at one-second resolution) passed on anything that touched the service
    row: the killed process's last heartbeat in the same second, or an
    admin's change.  Here an admin keeps forcing the hosts' services down
    and up again while the rig restarts them (no RPC to the compute, as a
    disable or enable would make), so that check passes at once every
    time; the rig must wait for the new process itself."""

    def _toggle(self, hosts, stop):
        conn = base.connect('minicloud')
        try:
            svcs = [s for s in conn.compute.services(binary='nova-compute')
                    if s.host in hosts]
            while not stop.is_set():
                for svc in svcs:
                    for forced in (True, False):
                        conn.compute.update_service_forced_down(
                            svc, svc.host, svc.binary, forced)
        finally:
            conn.close()

    def _change_then_boot(self, hosts, *args):
        """``minicloud ARGS`` while HOSTS' services are toggled, then a
        server booted onto each host at once."""
        import threading
        stop = threading.Event()
        toggler = threading.Thread(target=self._toggle, args=(hosts, stop))
        toggler.start()
        try:
            self.minicloud(*args)
        finally:
            stop.set()
            toggler.join()
        self.assertFalse(any(s.is_forced_down for s in
                             self.admin_conn.compute.services(
                                 binary='nova-compute')))
        return [(self.create_server(host=h, wait=False).id, h)
                for h in hosts]

    def test_boot_right_after_restart_start_and_set(self):
        self.addCleanup(self.enable_computes)
        self.addCleanup(self.minicloud, 'set',
                        'max-concurrent-live-migrations=default')
        self.addCleanup(self.minicloud, 'start-compute', 'c03')
        # Each change's boots are ACTIVE before the next change: the next
        # one restarts nova-compute (kill-compute c03, and `set` restarts
        # them all), and a restart kills a build in flight on that host:
        # the server goes ERROR, which says nothing of readiness.
        self._boot_active(['c02'], 'restart-compute', 'c02')
        self.minicloud('kill-compute', 'c03')
        self._boot_active(['c03'], 'start-compute', 'c03')
        self._boot_active(
            ['c01', 'c02', 'c03'], 'set', 'max-concurrent-live-migrations=3')

    def _boot_active(self, hosts, *args):
        """_change_then_boot, then wait until each server is ACTIVE on the
        host it was booted onto."""
        booted = self._change_then_boot(hosts, *args)
        servers = self._wait_all([sid for sid, _ in booted], 'ACTIVE')
        self.assertEqual(hosts, [s.compute_host for s in servers])


class TestFaultProxy(RigTestCase):
    """`minicloud faults`: the proxy behind cloud minicloud-faulty."""

    def setUp(self):
        super().setUp()
        self.addCleanup(self.minicloud, 'faults', 'clear')
        self.faulty = base.connect('minicloud-faulty')
        self.addCleanup(self.faulty.close)
        self.log = self.state['faults_log']

    def _log_lines(self):
        try:
            with open(self.log) as f:
                return f.readlines()
        except FileNotFoundError:
            return []

    def test_endpoints_go_through_the_proxy(self):
        for proxy, port in ((self.faulty.compute, 18774),
                            (self.faulty.network, 19696),
                            (self.faulty.block_storage, 18776),
                            (self.faulty.placement, 18778),
                            (self.faulty.image, 19292)):
            self.assertIn('127.0.0.1:%d' % port, proxy.get_endpoint())
        self.assertTrue(list(self.faulty.network.networks()))
        self.assertTrue(list(self.faulty.image.images()))
        list(self.faulty.block_storage.volumes())
        self.assertTrue(list(self.faulty.placement.resource_providers()))

    def test_503_counted(self):
        # The endpoint first: its version discovery (GET /v2.1) would go
        # through the fault too, one 503 that no status below counts.
        url = self.faulty.compute.get_endpoint() + '/os-services'
        before = len(self._log_lines())
        self.minicloud('faults', 'set', 'nova', '503=0.5')
        codes = [self.faulty.session.get(url, raise_exc=False).status_code
                 for _ in range(40)]
        lines = self._log_lines()[before:]
        self.assertEqual(codes.count(503), len(lines))
        self.assertTrue(all(' nova 503 GET ' in ln for ln in lines), lines)
        self.assertEqual(40, codes.count(503) + codes.count(200))
        self.assertGreater(codes.count(503), 5)
        self.assertGreater(codes.count(200), 5)
        # The clean cloud never sees them; `faults clear` ends them.
        self.assertTrue(list(self.admin_conn.compute.services()))
        self.minicloud('faults', 'clear')
        self.assertEqual([200] * 5, [
            self.faulty.session.get(url, raise_exc=False).status_code
            for _ in range(5)])

    def test_max_streak_lets_the_next_try_through(self):
        # At most 2 faults in a row on one request (method and path; the
        # query is not part of it): the third try is forwarded.
        url = self.faulty.compute.get_endpoint() + '/os-services'
        self.addCleanup(self.minicloud, 'faults', 'clear')
        self.minicloud('faults', 'set', 'nova', '503=1', 'max-streak=2')
        codes = [self.faulty.session.get('%s?n=%d' % (url, n),
                                         raise_exc=False).status_code
                 for n in range(9)]
        self.assertEqual([503, 503, 200] * 3, codes)

    def test_reset_hang_delay(self):
        from keystoneauth1 import exceptions as ksa_exc
        url = (self.state["fault_proxy"]["neutron"]["url"]
               + "/v2.0/networks")
        self.minicloud('faults', 'set', 'neutron', 'reset=1')
        self.assertRaises(ksa_exc.ConnectFailure, self.faulty.session.get,
                          url, connect_retries=0)
        self.minicloud('faults', 'set', 'neutron', 'hang=1')
        t0 = time.time()
        self.assertRaises(ksa_exc.ConnectTimeout, self.faulty.session.get,
                          url, timeout=2, connect_retries=0)
        self.assertLess(time.time() - t0, 6)
        self.minicloud('faults', 'set', 'neutron', 'delay=1.5')
        t0 = time.time()
        self.assertEqual(200, self.faulty.session.get(url).status_code)
        self.assertGreaterEqual(time.time() - t0, 1.5)
        kinds = [ln.split()[2] for ln in self._log_lines()[-2:]]
        self.assertEqual(['reset', 'hang'], kinds)

    def test_bad_settings_refused(self):
        for args in (('faults', 'set', 'keystone', '503=0.1'),
                     ('faults', 'set', 'nova', '503=2'),
                     ('faults', 'set', 'nova', '503=0.6', '502=0.6'),
                     ('faults', 'set', 'nova', 'boom=1'),
                     ('faults', 'set', 'nova', 'max-streak=1.5'),
                     ('timing', 'set', 'warp=9'),
                     ('set', 'token-ttl=1')):
            res = base._run_minicloud(*args, check=False)
            self.assertEqual(2, res.returncode, (args, res.stderr))
            self.assertEqual(1, len(res.stderr.strip().splitlines()),
                             res.stderr)


class TestRigNetworkAndZones(base.FunctionalTestCase):

    def test_blackhole_routes(self):
        import subprocess
        for net in ('198.18.0.0/24', '198.51.100.0/24', '2001:db8::/32'):
            fam = '-6' if ':' in net else '-4'
            out = subprocess.run(['ip', fam, 'route', 'show', 'type',
                                  'blackhole'], capture_output=True,
                                 text=True, check=True).stdout
            self.assertIn(net, out)
        for addr in ('198.18.0.9', '2001:db8::9'):
            res = subprocess.run(['ip', 'route', 'get', addr],
                                 capture_output=True, text=True)
            # Nothing addressed there leaves the machine.
            self.assertTrue(res.returncode != 0 or 'blackhole' in res.stdout
                            or 'unreachable' in res.stdout, res)

    def test_two_availability_zones(self):
        azs = self.state['availability_zones']
        hosts = self.state['compute_hosts']
        self.assertEqual(['az1', 'az2'], sorted(azs))
        self.assertEqual(sorted(hosts), sorted(azs['az1'] + azs['az2']))
        aggs = {a.name: a for a in self.admin_conn.compute.aggregates()}
        for az, members in azs.items():
            agg = aggs['minicloud-' + az]
            self.assertEqual(az, agg.availability_zone)
            self.assertEqual(sorted(members), sorted(agg.hosts))
        zones = {z.name for z in
                 self.admin_conn.compute.availability_zones()}
        self.assertLessEqual({'az1', 'az2'}, zones)
        # A server booted into az2 lands on one of its hosts.
        server = self._boot_conn(None, None).compute.create_server(
            **dict(self._server_attrs(None, None, None, None, None),
                   availability_zone='az2'))
        self.addCleanup(self._delete_server, server.id)
        server = self.wait_for_server(server.id, 'ACTIVE')
        self.assertIn(server.compute_host, azs['az2'])
