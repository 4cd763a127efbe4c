"""``openstack server recover-all`` on the minicloud: after a reboot of a
compute process (the fake hypervisor forgets its guests, as a rebooted
host does), after a host failure (kill-compute: evacuate, force-down with
the fenced confirmation, the legacy --via-db path) and volume re-attach.
"""

import time
import urllib.parse

from tests.functional import base


class _Base(base.FunctionalTestCase):

    def _service(self, host):
        svcs = [s for s in self.admin_conn.compute.services(
            binary='nova-compute', host=host) if s.host == host]
        self.assertEqual(1, len(svcs))
        return svcs[0]

    def _wait_service(self, host, state, timeout=120):
        deadline = time.time() + timeout
        while True:
            svc = self._service(host)
            if svc.state == state:
                return svc
            if time.time() > deadline:
                self.fail('nova-compute on %s not %s within %ds' % (
                    host, state, timeout))
            time.sleep(1)

    def _wait(self, predicate, what, timeout=120):
        deadline = time.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.time() > deadline:
                self.fail('timed out waiting for %s' % what)
            time.sleep(1)

    def _restore(self, host):
        """Cleanup: the host's nova-compute running, not forced down,
        enabled (a dead-host recovery disables it)."""
        self.minicloud('start-compute', host)
        svc = self._service(host)
        if svc.is_forced_down:
            self.admin_conn.compute.update_service_forced_down(
                svc, host, 'nova-compute', False)
        self._wait_service(host, 'up')
        self.enable_computes(host)

    def assert_disabled_by_recovery(self, host, rows, forced=False):
        """Issue 20 item 8: after the evacuation the dead host is disabled
        with a reason naming it; its row says how to bring it back."""
        svc = self._service(host)
        self.assertEqual('disabled', svc.status)
        self.assertIn('osc-nodeops recover-all --dead', svc.disabled_reason)
        self.assertIn('evacuated', svc.disabled_reason)
        [row] = [r for r in rows if r['Method'] == 'disable-host']
        self.assertEqual((host, 'disabled'), (row['ID'], row['Result']))
        self.assertIn('openstack compute service set --enable %s '
                      'nova-compute' % host, row['Message'])
        self.assertEqual(forced, 'openstack compute service set --up %s '
                         'nova-compute' % host in row['Message'])

    def _kill(self, host):
        self.addCleanup(self._restore, host)
        self.minicloud('kill-compute', host)

    def recover(self, *args, check=False, cloud='minicloud'):
        res = self.openstack('server', 'recover-all', *args,
                             '--poll-interval', '1', '-f', 'json',
                             check=check, cloud=cloud)
        import json
        rows = json.loads(res.stdout) if res.stdout.strip() else []
        return res, rows

    def rows_for(self, rows, *servers):
        ids = {s.id for s in servers}
        return [r for r in rows if r['ID'] in ids]


class TestRecoverAfterReboot(_Base):

    def test_brings_back_only_what_was_running(self):
        running = self.create_server(host='c01')
        stopped = self.create_server(host='c01', stopped=True)
        self.addCleanup(self._wait_service, 'c01', 'up')
        self.minicloud('restart-compute', 'c01')
        self._wait_service('c01', 'up')
        # nova's start-up power-state sync marks the forgotten guest
        self._wait(lambda: self.admin_conn.compute.get_server(
            running.id).power_state == 0, 'power state NOSTATE')
        res, rows = self.recover('c01', '--dry-run')
        mine = {r['ID']: r for r in self.rows_for(rows, running, stopped)}
        self.assertEqual(('reboot', 'planned'),
                         (mine[running.id]['Method'],
                          mine[running.id]['Result']))
        self.assertEqual(('skip', 'skipped'),
                         (mine[stopped.id]['Method'],
                          mine[stopped.id]['Result']))
        self.assertIn('stopped by user', mine[stopped.id]['Message'])
        self.assertEqual(0, self.admin_conn.compute.get_server(
            running.id).power_state)

        res, rows = self.recover('c01', '--timeout', '60')
        mine = {r['ID']: r for r in self.rows_for(rows, running, stopped)}
        # the soft reboot of a guest the hypervisor forgot comes back not
        # running: recover-all escalates to a hard reboot (S10)
        self.assertEqual(('hard-reboot', 'running'),
                         (mine[running.id]['Method'],
                          mine[running.id]['Result']), res.stderr)
        self.assertIn('escalated', mine[running.id]['Message'])
        self.assertEqual('skipped', mine[stopped.id]['Result'])
        srv = self.admin_conn.compute.get_server(running.id)
        self.assertEqual(('ACTIVE', 1, 'c01'),
                         (srv.status, srv.power_state, srv.compute_host))
        actions = [a.action for a in
                   self.admin_conn.compute.server_actions(running.id)]
        self.assertIn('reboot', actions)
        self.assertEqual('SHUTOFF', self.admin_conn.compute.get_server(
            stopped.id).status)
        if all(r['Result'] in ('running', 'skipped') for r in rows):
            self.assertEqual(0, res.returncode, res.stderr)

    def test_paused_with_its_guest_gone_comes_back_paused(self):
        gone = self.create_server(host='c01')
        self.admin_conn.compute.pause_server(gone.id)
        self.wait_for_server(gone.id, 'PAUSED')
        self.addCleanup(self._wait_service, 'c01', 'up')
        self.minicloud('restart-compute', 'c01')
        self._wait_service('c01', 'up')
        # nova's power-state sync records the forgotten guest as NOSTATE;
        # the server stays PAUSED
        self._wait(lambda: self.admin_conn.compute.get_server(
            gone.id).power_state == 0, 'power state NOSTATE')
        self.assertEqual('PAUSED', self.admin_conn.compute.get_server(
            gone.id).status)
        res, rows = self.recover('c01', '--dry-run')
        mine = self.rows_for(rows, gone)
        self.assertEqual([('hard-reboot', 'planned')],
                         [(r['Method'], r['Result']) for r in mine],
                         res.stderr)
        self.assertIn('guest is gone', mine[0]['Message'])
        self.assertIn('paused by user', mine[0]['Message'])
        res, rows = self.recover('c01', '--timeout', '60')
        mine = self.rows_for(rows, gone)
        self.assertEqual([('hard-reboot', 'paused')],
                         [(r['Method'], r['Result']) for r in mine],
                         res.stderr)
        # a real guest again, paused as its owner had it (nova's fake
        # driver reports a paused guest as running: power state 1, not 3)
        srv = self.admin_conn.compute.get_server(gone.id)
        self.assertEqual(('PAUSED', 'c01'), (srv.status, srv.compute_host))
        self.assertIn(srv.power_state, (1, 3))
        actions = [a.action for a in
                   self.admin_conn.compute.server_actions(gone.id)]
        self.assertEqual(2, actions.count('pause'), actions)
        self.assertIn('reboot', actions)

    def test_all_starts_user_stopped(self):
        stopped = self.create_server(host='c01', stopped=True)
        res, rows = self.recover('c01', '--all', '--timeout', '60')
        mine = self.rows_for(rows, stopped)
        self.assertEqual([('start', 'running')],
                         [(r['Method'], r['Result']) for r in mine],
                         res.stderr)
        srv = self.admin_conn.compute.get_server(stopped.id)
        self.assertEqual(('ACTIVE', 1), (srv.status, srv.power_state))

    def test_unknown_host_is_one_line_error(self):
        res, _ = self.recover('no-such-host')
        self.assertEqual(1, res.returncode)
        self.assertIn("no nova-compute service on host 'no-such-host'",
                      res.stderr)
        self.assertEqual('', res.stdout)


class TestRecoverDeadHost(_Base):

    def test_refusals_then_evacuate_and_reattach(self):
        vol = self.create_volume()  # before the server: cleanups reverse
        running = self.create_server(host='c03')
        stopped = self.create_server(host='c03', stopped=True)
        self.admin_conn.compute.create_volume_attachment(
            running.id, volume_id=vol.id)
        self.wait_for_volume(vol.id, 'in-use')
        # the device nova chose (the fake driver names them /dev/sdX)
        device = [a.device for a in self.admin_conn.compute
                  .volume_attachments(running.id)][0]
        # refused while c03 is up; --force-down needs the confirmation
        res, _ = self.recover('c03', '--dead')
        self.assertEqual(1, res.returncode)
        self.assertIn('still up', res.stderr)
        res, _ = self.recover('c03', '--dead', '--force-down')
        self.assertEqual(2, res.returncode)
        self.assertIn('--confirm-fenced c03', res.stderr)
        res, _ = self.recover('c03', '--dead', '--force-down',
                              '--confirm-fenced', 'c02')
        self.assertEqual(2, res.returncode)
        self.assertFalse(self._service('c03').is_forced_down)
        self.assertEqual('c03', self.admin_conn.compute.get_server(
            running.id).compute_host)

        self._kill('c03')
        self._wait_service('c03', 'down')
        # reboot mode refuses a dead host
        res, _ = self.recover('c03')
        self.assertEqual(1, res.returncode)
        self.assertIn('use --dead', res.stderr)
        # down is not fenced (issue 20 item 7): refused, nothing changed
        res, rows = self.recover('c03', '--dead', '--target-host', 'c02')
        self.assertEqual(1, res.returncode, res.stderr)
        self.assertEqual(1, len(res.stderr.strip().splitlines()), res.stderr)
        self.assertIn('no fencing evidence', res.stderr)
        self.assertEqual([], rows)
        self.assert_untouched('c03', running, stopped)

        res, rows = self.recover('c03', '--dead', '--target-host', 'c02',
                                 '--confirm-fenced', 'c03',
                                 '--reattach-volumes', '--timeout', '120')
        self.assert_disabled_by_recovery('c03', rows)
        mine = self.rows_for(rows, running, stopped)
        got = sorted((r['ID'] == running.id, r['Method'], r['Result'],
                      r['Dest Compute'] or '') for r in mine)
        self.assertEqual(
            sorted([(True, 'evacuate', 'evacuated', 'c02'),
                    (False, 'evacuate', 'evacuated', 'c02'),
                    (True, 'reattach', 'reattached', '')]),
            got, res.stderr)
        # arrived stopped (2.95) and started again, because it was running
        srv = self.admin_conn.compute.get_server(running.id)
        self.assertEqual(('ACTIVE', 1, 'c02'),
                         (srv.status, srv.power_state, srv.compute_host))
        # was stopped: stays stopped
        srv = self.admin_conn.compute.get_server(stopped.id)
        self.assertEqual(('SHUTOFF', 'c02'), (srv.status, srv.compute_host))
        migs = list(self.admin_conn.compute.migrations(
            instance_uuid=running.id, migration_type='evacuation'))
        self.assertEqual(['done'], [m.status for m in migs
                                    if m.source_compute == 'c03'][-1:])
        v = self.admin_conn.block_storage.get_volume(vol.id)
        self.assertEqual('in-use', v.status)
        self.assertEqual([(running.id, 'c02')],
                         [(a['server_id'], a['host_name'])
                          for a in v.attachments])
        att = list(self.admin_conn.compute.volume_attachments(running.id))
        self.assertEqual([(vol.id, device)],
                         [(a.volume_id, a.device) for a in att])
        # the pair listing agrees, through the API and from the DBs
        pairs = self.openstack('compute', 'node', 'volumes', 'c02',
                               parse_json=True)
        self.assertIn({'Server ID': running.id, 'Volume ID': vol.id,
                       'Device': device, 'Status': 'in-use',
                       'Attach Status': 'attached'},
                      [{k: p[k] for k in ('Server ID', 'Volume ID', 'Device',
                                          'Status', 'Attach Status')}
                       for p in pairs])
        pairs = self.openstack(
            'compute', 'node', 'volumes', 'c02', '--from-db',
            '--nova-conf', self.state['nova_conf'],
            '--cinder-conf', self.state['cinder_conf'], parse_json=True)
        self.assertIn((running.id, vol.id, device, 'in-use', 'attached'),
                      [(p['Server ID'], p['Volume ID'], p['Device'],
                        p['Status'], p['Attach Status']) for p in pairs])
        if all(r['Result'] in ('evacuated', 'reattached', 'skipped')
               for r in rows):
            self.assertEqual(0, res.returncode, res.stderr)

    def assert_untouched(self, host, *servers):
        """Nothing of a refused recovery happened: the servers on the
        host, no evacuation, nova-compute enabled and not forced down."""
        for s in servers:
            srv = self.admin_conn.compute.get_server(s.id)
            self.assertEqual((host, None), (srv.compute_host, srv.task_state))
            self.assertEqual([], list(self.admin_conn.compute.migrations(
                instance_uuid=s.id, migration_type='evacuation')))
        svc = self._service(host)
        self.assertEqual(('enabled', False),
                         (svc.status, bool(svc.is_forced_down)))

    def _fence_check(self, rc):
        """A --fence-check command: a script exiting ``rc`` for c03 (any
        other host: 9), recording its argv and environment."""
        import os
        import tempfile
        d = tempfile.mkdtemp()
        self.addCleanup(__import__('shutil').rmtree, d, True)
        script = os.path.join(d, 'power-off?')
        with open(script, 'w') as f:
            f.write('#!/bin/sh\nprintf "%%s\\n" "$@" > "$0.argv"\n'
                    'env > "$0.env"\n'
                    'echo "power is whatever; password=hunter2"\n'
                    'case "$1" in c03) exit %d;; esac\nexit 9\n' % rc)
        os.chmod(script, 0o755)
        return script

    def test_down_host_needs_fencing_evidence_fence_check(self):
        import shlex
        server = self.create_server(host='c03')
        self._kill('c03')
        self._wait_service('c03', 'down')
        # --fence-check says "not powered off" (exit 1): refused, unchanged
        check = self._fence_check(1)
        res, rows = self.recover('c03', '--dead', '--fence-check',
                                 '%s {host}' % shlex.quote(check))
        self.assertEqual(1, res.returncode, res.stderr)
        self.assertEqual(1, len(res.stderr.strip().splitlines()), res.stderr)
        self.assertIn('--fence-check for c03 exited 1', res.stderr)
        self.assertEqual([], rows)
        self.assert_untouched('c03', server)
        with open(check + '.argv') as f:
            self.assertEqual('c03\n', f.read())
        with open(check + '.env') as f:
            env = f.read()
        self.assertNotIn('OS_', env)
        self.assertNotIn('hunter2', res.stdout + res.stderr)
        # exit 0: powered off, evacuated; the dead host disabled
        check = self._fence_check(0)
        res, rows = self.recover('c03', '--dead', '--fence-check',
                                 '%s {host}' % shlex.quote(check),
                                 '--timeout', '120')
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertIn('--fence-check exited 0', res.stderr)
        self.assertEqual([('evacuate', 'evacuated')],
                         [(r['Method'], r['Result'])
                          for r in self.rows_for(rows, server)], res.stderr)
        self.assertNotEqual('c03', self.admin_conn.compute.get_server(
            server.id).compute_host)
        self.assert_disabled_by_recovery('c03', rows)
        self.assertNotIn('hunter2', res.stdout + res.stderr)

    def test_confirm_fenced_must_name_the_host_even_when_down(self):
        server = self.create_server(host='c03')
        self._kill('c03')
        self._wait_service('c03', 'down')
        # the host is down already: the confirmation is still checked, and
        # --force-down without one is a usage error
        for args in (('--force-down', '--confirm-fenced', 'c02'),
                     ('--force-down',)):
            res, rows = self.recover('c03', '--dead', *args)
            self.assertEqual(2, res.returncode, res.stderr)
            self.assertIn('--confirm-fenced', res.stderr)
            self.assertEqual([], rows)
        srv = self.admin_conn.compute.get_server(server.id)
        self.assertEqual(('c03', None), (srv.compute_host, srv.task_state))
        self.assertEqual([], list(self.admin_conn.compute.migrations(
            instance_uuid=server.id, migration_type='evacuation')))
        self.assertFalse(self._service('c03').is_forced_down)

    def test_force_down_with_fenced_confirmation(self):
        server = self.create_server(host='c03')
        # another admin disabled c03 before: that stays as they left it
        svc = self._service('c03')
        self.admin_conn.compute.disable_service(
            svc, host='c03', binary='nova-compute',
            disabled_reason='RMA: bad DIMM, do not enable')
        self.addCleanup(self._restore, 'c03')
        # (cleanups run last first: c03's nova-compute is stopped, then
        # started again, whose start-up completes the evacuation records;
        # nova refuses to force a host up while they remain)
        self.addCleanup(self.minicloud, 'kill-compute', 'c03')
        # nova reports c03 up (its nova-compute is left running: killing it
        # would race nova's 12 s service_down_time against this command's
        # start-up); the operator says it is fenced, and only that
        # confirmation lets --force-down force it down
        self.assertEqual('up', self._service('c03').state)
        res, rows = self.recover('c03', '--dead', '--force-down',
                                 '--confirm-fenced', 'c03', '--timeout',
                                 '120')
        self.assertIn('forced down', res.stderr)
        svc = self._service('c03')
        self.assertTrue(svc.is_forced_down)
        self.assertEqual(('disabled', 'RMA: bad DIMM, do not enable'),
                         (svc.status, svc.disabled_reason))
        [row] = [r for r in rows if r['Method'] == 'disable-host']
        self.assertEqual('skipped', row['Result'])
        self.assertIn('already disabled by someone else', row['Message'])
        self.assertNotIn('--enable', row['Message'])
        self.assertIn('openstack compute service set --up c03 nova-compute',
                      row['Message'])
        mine = self.rows_for(rows, server)
        self.assertEqual([('evacuate', 'evacuated')],
                         [(r['Method'], r['Result']) for r in mine],
                         res.stderr)
        srv = self.admin_conn.compute.get_server(server.id)
        self.assertNotEqual('c03', srv.compute_host)
        self.assertEqual(('ACTIVE', 1), (srv.status, srv.power_state))

    def test_rerun_finishes_servers_evacuated_but_still_stopped(self):
        running = self.create_server(host='c03')
        stopped = self.create_server(host='c03', stopped=True)
        self._kill('c03')
        self._wait_service('c03', 'down')
        # What a run killed after nova accepted the evacuations leaves:
        # both evacuated to c02, delivered SHUTOFF (compute API 2.95), the
        # running one not started again yet.
        for s in (running, stopped):
            self.admin_conn.compute.evacuate_server(s.id, host='c02')
        for s in (running, stopped):
            self._wait(lambda: [m.status for m in self.admin_conn.compute
                                .migrations(instance_uuid=s.id,
                                            migration_type='evacuation')
                                if m.source_compute == 'c03'] == ['done'],
                       'evacuation of %s done' % s.id)
            srv = self.wait_for_server(s.id, 'SHUTOFF')
            self.assertEqual('c02', srv.compute_host)
        # c03 forced down by someone else (what an external fencer such
        # as Masakari does): that is the fencing evidence
        svc = self._service('c03')
        self.admin_conn.compute.update_service_forced_down(
            svc, 'c03', 'nova-compute', True)
        res, rows = self.recover('c03', '--dead', '--timeout', '120')
        self.assertIn('forced down by someone else', res.stderr)
        self.assert_disabled_by_recovery('c03', rows)
        mine = {r['ID']: r for r in self.rows_for(rows, running, stopped)}
        self.assertEqual(('evacuate', 'evacuated', 'c02'),
                         (mine.get(running.id, {}).get('Method'),
                          mine.get(running.id, {}).get('Result'),
                          mine.get(running.id, {}).get('Dest Compute')),
                         res.stderr)
        self.assertIn('earlier run', mine[running.id]['Message'])
        srv = self.admin_conn.compute.get_server(running.id)
        self.assertEqual(('ACTIVE', 1, 'c02'),
                         (srv.status, srv.power_state, srv.compute_host))
        # its owner had stopped the other one: it stays stopped
        self.assertEqual(('skip', 'skipped'),
                         (mine[stopped.id]['Method'],
                          mine[stopped.id]['Result']))
        self.assertIn('stopped by user', mine[stopped.id]['Message'])
        self.assertEqual('SHUTOFF', self.admin_conn.compute.get_server(
            stopped.id).status)
        # nothing was evacuated twice
        for s in (running, stopped):
            self.assertEqual(1, len([
                m for m in self.admin_conn.compute.migrations(
                    instance_uuid=s.id, migration_type='evacuation')]))
        if all(r['Result'] in ('evacuated', 'skipped') for r in rows):
            self.assertEqual(0, res.returncode, res.stderr)

    def test_failed_evacuation_row_says_why(self):
        # A guest of the server already on the target: what an earlier
        # --via-db move to c02 (hard rebooted there) undone by --undo
        # leaves.  nova refuses the evacuation to c02 ("Instance ... already
        # exists."), records the fault and a failed instance action event.
        import os
        import tempfile
        server = self.create_server(host='c03')
        self._kill('c03')
        self._wait_service('c03', 'down')
        jdir = tempfile.mkdtemp()
        self.addCleanup(__import__('shutil').rmtree, jdir, True)
        journal = os.path.join(jdir, 'j.json')
        conf = ('--nova-conf', self.state['nova_conf'],
                '--neutron-conf', self.state['neutron_conf'])
        res, _ = self.recover('c03', '--dead', '--via-db', '--target-host',
                              'c02', '--execute', '--journal', journal,
                              '--confirm-fenced', 'c03', '--timeout', '120',
                              *conf)
        self.assertEqual(0, res.returncode, res.stderr)
        self.openstack('server', 'recover-all', '--undo', journal, *conf)
        self.assertEqual('c03', self.admin_conn.compute.get_server(
            server.id).compute_host)
        res, rows = self.recover('c03', '--dead', '--target-host', 'c02',
                                 '--confirm-fenced', 'c03', '--retries', '0',
                                 '--timeout', '120')
        self.assertEqual(1, res.returncode, res.stderr)
        mine = self.rows_for(rows, server)
        self.assertEqual([('evacuate', 'failed')],
                         [(r['Method'], r['Result']) for r in mine],
                         res.stderr)
        srv = self.admin_conn.compute.get_server(server.id)
        fault = srv.fault['message']
        self.assertIn('already exists', fault)
        message = mine[0]['Message']
        self.assertIn('nova fault: %s' % fault, message)
        self.assertIn('instance action evacuate: event '
                      'compute_rebuild_instance failed', message)

    def test_via_db_end_to_end(self):
        import os
        import tempfile
        net = self.state['networks']['public']['id']
        running = self.create_server(host='c03', network=net)
        stopped = self.create_server(host='c03', network=net, stopped=True)
        self._kill('c03')
        self._wait_service('c03', 'down')
        conf = ('--nova-conf', self.state['nova_conf'],
                '--neutron-conf', self.state['neutron_conf'])
        # no fencing evidence: refused, nothing changed
        res, rows = self.recover('c03', '--dead', '--via-db',
                                 '--target-host', 'c02', *conf)
        self.assertEqual(1, res.returncode, res.stderr)
        self.assertIn('no fencing evidence', res.stderr)
        self.assertNotIn('UPDATE', res.stderr)
        self.assert_untouched('c03', running, stopped)
        conf += ('--confirm-fenced', 'c03')
        # dry run (the default): rows planned, nothing moved
        res, rows = self.recover('c03', '--dead', '--via-db',
                                 '--target-host', 'c02', *conf)
        self.assertEqual(0, res.returncode, res.stderr)
        mine = self.rows_for(rows, running, stopped)
        self.assertEqual({('db-move', 'planned'),
                          ('move-allocation', 'planned')},
                         {(r['Method'], r['Result']) for r in mine})
        self.assertIn(('c03', 'disable-host', 'planned'),
                      [(r['ID'], r['Method'], r['Result']) for r in rows])
        self.assertEqual('enabled', self._service('c03').status)
        self.assertIn('UPDATE `nova_cell1`.`instances`', res.stderr)
        self.assertEqual('c03', self.admin_conn.compute.get_server(
            running.id).compute_host)
        # execute: moved in the DBs, then hard rebooted on c02
        jdir = tempfile.mkdtemp()
        self.addCleanup(__import__('shutil').rmtree, jdir, True)
        journal = os.path.join(jdir, 'j.json')
        res, rows = self.recover('c03', '--dead', '--via-db',
                                 '--target-host', 'c02', '--execute',
                                 '--journal', journal, '--timeout', '120',
                                 *conf)
        mine = self.rows_for(rows, running, stopped)
        got = sorted((r['ID'] == running.id, r['Method'], r['Result'])
                     for r in mine)
        self.assertEqual(sorted([(True, 'db-move', 'moved'),
                                 (False, 'db-move', 'moved'),
                                 (True, 'move-allocation', 'moved'),
                                 (False, 'move-allocation', 'moved'),
                                 (True, 'hard-reboot', 'running'),
                                 (False, 'skip', 'skipped')]), got,
                         res.stderr)
        self.assertTrue(os.path.exists(journal))
        self.assert_disabled_by_recovery('c03', rows)
        srv = self.admin_conn.compute.get_server(running.id)
        self.assertEqual(('ACTIVE', 1, 'c02'),
                         (srv.status, srv.power_state, srv.compute_host))
        srv = self.admin_conn.compute.get_server(stopped.id)
        self.assertEqual(('SHUTOFF', 'c02'), (srv.status, srv.compute_host))
        for s in (running, stopped):
            ports = list(self.admin_conn.network.ports(device_id=s.id))
            self.assertEqual(['c02'], [p.binding_host_id for p in ports])
        password = urllib.parse.urlsplit(
            self.state['databases']['nova']).password
        self.assertNotIn(password, res.stderr + res.stdout)
