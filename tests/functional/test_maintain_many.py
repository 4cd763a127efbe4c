"""``openstack compute node maintain`` across many hosts: the rig grown to
eight computes for this class (``base.GrownRigTestCase``), an aggregate of
three of the new ones (the other two: room to move to).  Waves of one and
two hosts with the operator's step ``minicloud restart-compute {host}`` (a
reboot of the fake hypervisor) and ``--migrate-back``, the disruption
budget sampled from the service list in a thread, a failing step on the
second host, SIGKILL in the middle and a rerun; a wave of three drained
at once, the migration list sampled in a thread (issue 24)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import fixtures

from tests.functional import base
from tests.functional import test_maintain
from tests.functional.test_drain_inflight import BEHAVIOUR

# The step gets an explicit environment: the rig's MINICLOUD_DIR is
# forwarded by name (--exec-env MINICLOUD_DIR).
RESTART = '%s restart-compute {host}' % base.MINICLOUD


def live_in_group(pgid):
    """[(pid, state)] of the processes of group PGID that are not zombies,
    from /proc/PID/stat (state and process group follow the ')' that
    ends the command name)."""
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % pid) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != 'Z':
            found.append((int(pid), state))
    return found


class ServiceSampler(object):
    """Samples ``compute service list`` during a run: the most hosts of
    ``hosts`` ever disabled at once."""

    def __init__(self, conn, hosts):
        self.conn = conn
        self.hosts = set(hosts)
        self.most = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                down = [s.host for s in self.conn.compute.services(
                    binary='nova-compute') if s.host in self.hosts
                    and s.status == 'disabled']
                self.most = max(self.most, len(down))
                self.samples += 1
            except Exception:
                pass
            self._stop.wait(0.5)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


FINAL = ('completed', 'confirmed', 'done', 'failed', 'error', 'cancelled',
         'reverted', 'finished')


class MigrationSampler(ServiceSampler):
    """Samples nova's migration list during a run (every unfinished
    migration of the rig, anyone's): the most moves out of one source and
    into one destination at once, the samples where a live migration of
    ``ours`` waited ``queued`` behind another from its source (nova's
    max_concurrent_live_migrations), the most sources of ours moving at
    once, and every destination ours were sent to."""

    def __init__(self, conn, ours):
        super(MigrationSampler, self).__init__(conn, ())
        self.ours = set(ours)
        self.most_out = self.most_in = self.sources_at_once = 0
        self.queued_behind = []
        self.destinations = set()
        self.worst: dict = {}   # the sample that set each maximum

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sample(list(self.conn.compute.migrations()))
            except Exception:
                pass
            self._stop.wait(0.3)

    def sample(self, migrations):
        running = [m for m in migrations if m.status not in FINAL]
        for key, attr in (('source_compute', 'most_out'),
                          ('dest_compute', 'most_in')):
            counts: dict = {}
            for m in running:
                # No destination yet: nova's record has none until the
                # scheduler has validated it, even a named one (without
                # force, nova passes the host as the request spec's
                # requested_destination).
                if getattr(m, key):
                    counts[getattr(m, key)] = counts.get(
                        getattr(m, key), 0) + 1
            if counts and max(counts.values()) > getattr(self, attr):
                setattr(self, attr, max(counts.values()))
                self.worst[attr] = [(m.id, m.status, m.source_compute,
                                     m.dest_compute) for m in running]
        mine = [m for m in running if m.server_id in self.ours]
        for m in mine:
            if m.status == 'queued' and any(
                    x.source_compute == m.source_compute and x.status not in
                    ('accepted', 'queued') for x in running):
                self.queued_behind.append((m.id, m.source_compute))
        self.sources_at_once = max(self.sources_at_once, len({
            m.source_compute for m in mine
            if m.status in ('preparing', 'running', 'post-migrating')}))
        self.destinations |= {m.dest_compute for m in migrations
                              if m.server_id in self.ours}
        self.samples += 1


class TestMaintainManyHosts(test_maintain.MaintainHelpers,
                            base.GrownRigTestCase):

    COMPUTES = 8

    def setUp(self):
        super(TestMaintainManyHosts, self).setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.hosts = list(self.state['compute_hosts'])
        self.assertEqual(self.COMPUTES, len(self.hosts))
        for host in self.hosts:
            self.addCleanup(self.enable_computes, host)
        self._forget_campaigns()
        # The aggregate: three grown hosts (c04..c06), which hold nothing
        # but this class's servers (a server another test leaked on
        # c01..c03 cannot stop these runs); c01..c03 and the two other
        # grown hosts (c07, c08) take servers like any other host in
        # service.
        self.members = self.hosts[self._before_computes:][:3]
        self.spare = self.hosts[self._before_computes:][3:]
        self.assertEqual(3, len(self.members))
        self.assertEqual(2, len(self.spare))
        self.agg = self._aggregate('nodeops-maint-%d' % os.getpid(),
                                   self.members)

    def _aggregate(self, name, hosts):
        compute = self.admin_conn.compute
        agg = compute.create_aggregate(name=name)
        self.addCleanup(compute.delete_aggregate, agg)
        for h in hosts:
            compute.add_host_to_aggregate(agg, h)
            self.addCleanup(compute.remove_host_from_aggregate, agg, h)
        return name

    def test_aggregate_waves_exec_migrate_back(self):
        servers = {h: self.create_server(host=h).id for h in self.members}
        for k in (1, 2):
            events = os.path.join(self.tmp, 'events-%d.jsonl' % k)
            t0 = time.time()
            with ServiceSampler(self.admin_conn, self.members) as sample:
                res = self._maintain(
                    '--aggregate', self.agg, '--max-hosts', k, '--exec',
                    RESTART, '--exec-env', 'MINICLOUD_DIR',
                    '--migrate-back', '--events', events,
                    '--state', os.path.join(self.tmp, 'state-%d' % k),
                    '-f', 'json')
            took = time.time() - t0
            self.assertEqual(0, res.returncode, res.stderr)
            rows = json.loads(res.stdout)
            self.assertEqual(sorted(self.members),
                             sorted(r['Host'] for r in rows))
            self.assertTrue(all(r['Result'] == 'done' for r in rows), rows)
            self.assertEqual(list(range(1, -(-len(self.members) // k) + 1)),
                             sorted({r['Wave'] for r in rows}))
            self.assertEqual([1] * len(self.members),
                             [r['Moved Back'] for r in rows])
            self.assertGreater(sample.samples, 3)
            # Never more than K out at once; with K=2 two were out.
            self.assertEqual(k, sample.most, 'K=%d, %.0f s' % (k, took))
            for host, sid in servers.items():
                self.assertEqual(host, self._host_of(sid))
                self.assertEqual('enabled', self._status(host).status)
            recs = self._events(events)
            execs = [r['host'] for r in recs
                     if r['step'] == 'exec' and r['state'] == 'done']
            self.assertEqual(sorted(self.members), sorted(execs))
            moved = {r['server'] for r in recs if r['server']}
            self.assertLessEqual(set(servers.values()), moved)
            # Every host was really rebooted: its guests were forgotten
            # and came back with the migration home, its service is up.
            for host in self.members:
                self.assertEqual('up', self._status(host).state)

    def test_failing_exec_stops_at_second_host(self):
        first, second, third = sorted(self.members)[:3]
        later = {third: self.create_server(host=third).id}
        exec_cmd = 'test {host} != %s' % second
        res = self._maintain('--aggregate', self.agg, '--order', 'name',
                             '--exec', exec_cmd, '-f', 'json')
        self.assertEqual(1, res.returncode, res.stderr)
        rows = {r['Host']: r for r in json.loads(res.stdout)}
        self.assertEqual('done', rows[first]['Result'])
        self.assertEqual('failed', rows[second]['Result'])
        svc = self._status(second)
        self.assertEqual('disabled', svc.status)
        self.assertIn('exec failed', svc.disabled_reason)
        self.assertEqual('enabled', self._status(first).status)
        for h in later:  # untouched
            self.assertEqual('not-started', rows[h]['Result'])
            svc = self._status(h)
            self.assertEqual('enabled', svc.status)
            self.assertFalse(svc.disabled_reason)
            self.assertEqual(h, self._host_of(later[h]))

    def _abort_live(self, server_id):
        for m in self.admin_conn.compute.migrations(
                instance_uuid=server_id, migration_type='live-migration'):
            if m.status not in FINAL:
                self.admin_conn.compute.abort_server_migration(
                    m.id, server_id, ignore_missing=True)

    def _live_status(self, server_id):
        migs = sorted(self.admin_conn.compute.migrations(
            instance_uuid=server_id, migration_type='live-migration'),
            key=lambda m: m.id)
        return migs[-1].status if migs else None

    def test_a_wave_drains_its_hosts_at_once_within_the_slots(self):
        # Issue 24 items 1, 3 and 5.  A wave of the three members, two
        # servers each whose live migrations take 4 s (nova's
        # max_concurrent_live_migrations is 1 on the rig).  Before it, the
        # test starts a live migration that never converges from c01 to a
        # spare host: while it runs, that host is no destination of ours.
        # Sampled from nova's migration list all along: never more than
        # one move out of a source or into a destination (the slots'
        # defaults, counting the test's migration), none of ours ever
        # waiting queued behind another, two hosts moving at once.
        busy = self.spare[0]
        blocker = self.create_server(host=self.hosts[0])
        self.admin_conn.compute.set_server_metadata(
            blocker.id, **{BEHAVIOUR: 'never-converge'})
        self.addCleanup(self._abort_live, blocker.id)
        self.admin_conn.compute.live_migrate_server(
            blocker.id, host=busy, block_migration='auto')
        deadline = time.time() + 60
        while self._live_status(blocker.id) != 'running':
            self.assertLess(time.time(), deadline, 'the test migration to '
                            '%s never ran' % busy)
            time.sleep(0.3)
        ours = {}
        for host in self.members:
            for srv in self.create_servers(2, host=host):
                self.admin_conn.compute.set_server_metadata(
                    srv.id, **{BEHAVIOUR: 'slow:4'})
                ours[srv.id] = host
        log = os.path.join(self.tmp, 'steps.log')
        step = ('echo start {host} $(date +%%s.%%N) >> %s; sleep 2; '
                'echo end {host} $(date +%%s.%%N) >> %s' % (log, log))
        with MigrationSampler(self.admin_conn, ours) as sample:
            res = self._maintain('--aggregate', self.agg, '--max-hosts', '3',
                                 '--exec', step, '--poll-interval', '1',
                                 '-f', 'json')
        self.assertEqual(0, res.returncode, res.stderr)
        rows = json.loads(res.stdout)
        self.assertEqual([('done', 1)] * 3,
                         [(r['Result'], r['Wave']) for r in rows], rows)
        self.assertGreater(sample.samples, 10)
        self.assertEqual(1, sample.most_out, sample.worst)
        self.assertEqual(1, sample.most_in, sample.worst)
        self.assertEqual([], sample.queued_behind)
        self.assertGreaterEqual(sample.sources_at_once, 2)
        self.assertNotIn(busy, sample.destinations)
        self.assertEqual('running', self._live_status(blocker.id))
        for sid, host in ours.items():
            self.assertNotEqual(host, self._host_of(sid))
        # The three steps ran at the same time: each started before any
        # ended.
        with open(log) as f:
            lines = [ln.split() for ln in f]
        starts = [float(t) for what, _, t in lines if what == 'start']
        ends = [float(t) for what, _, t in lines if what == 'end']
        self.assertEqual(3, len(starts))
        self.assertLess(max(starts), min(ends))

    def _start(self, args, cwd):
        argv = [os.path.join(os.path.dirname(sys.executable), 'openstack'),
                '--os-cloud', 'minicloud'] + args
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=base.CLOUDS_YAML)
        run = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=cwd)
        self.addCleanup(lambda: run.poll() is None and run.kill())
        return run

    def _wait_for_line(self, path, word, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(path) and word in open(path).read().split():
                return
            time.sleep(0.2)
        self.fail('%s never appeared in %s' % (word, path))

    def test_sigkill_and_resume(self):
        # Issue 20 item 6: the progress is in the cloud.  The run is
        # killed during the second host's step, the first host's step
        # done (the two run at once: one wave, issue 24); the rerun, from
        # another directory and without --state, does not repeat the first
        # host's step, and refuses to start the cut one again without
        # --rerun-exec (issue 21 item 5).
        members = sorted(self.members)
        log = os.path.join(self.tmp, 'exec.log')
        go = os.path.join(self.tmp, 'go')
        # the second host's step lasts until the kill (then ``go``)
        exec_cmd = 'echo {host} >> %s; test {host} != %s || test -e %s || ' \
            'sleep 60' % (log, members[1], go)
        args = ['compute', 'node', 'maintain', '--aggregate', self.agg,
                '--max-hosts', '2', '--order', 'name', '--exec', exec_cmd]
        here = os.path.join(self.tmp, 'first')
        there = os.path.join(self.tmp, 'clone')
        os.mkdir(here)
        os.mkdir(there)
        run = self._start(args, here)
        self._wait_for_line(log, members[1])
        deadline = time.time() + 120
        while not any(' exec=' in ' ' + a.metadata.get(
                'host:' + members[0], '') for a in self._campaigns()):
            self.assertLess(time.time(), deadline, 'the first step was '
                            'never recorded as done')
            time.sleep(0.3)
        run.send_signal(signal.SIGKILL)
        run.wait(30)
        with open(go, 'w'):
            pass
        self.assertEqual('disabled', self._status(members[1]).status)
        self.assertIn('osc-nodeops lease',
                      self._status(members[1]).disabled_reason)
        [agg] = self._campaigns()
        self.assertEqual([], agg.hosts)
        self.assertIn('exec-start=', agg.metadata['host:' + members[1]])
        self.assertIn(' exec=', ' ' + agg.metadata['host:' + members[0]])
        refused = self._start(args + ['-f', 'json'], there)
        out, err = refused.communicate(timeout=900)
        self.assertEqual(1, refused.returncode, err)
        rows = {r['Host']: r for r in json.loads(out)}
        self.assertIn('--rerun-exec %s' % members[1],
                      rows[members[1]]['Message'])
        with ServiceSampler(self.admin_conn, self.members) as sample:
            done = self._start(args + ['--rerun-exec', members[1],
                                       '-f', 'json'], there)
            out, err = done.communicate(timeout=900)
        self.assertEqual(0, done.returncode, err)
        rows = {r['Host']: r for r in json.loads(out)}
        self.assertTrue(all(r['Result'] == 'done' for r in rows.values()),
                        rows)
        with open(log) as f:
            ran = f.read().split()
        # The first host's step finished before the kill: not run again;
        # the second's was cut: run again only with --rerun-exec; then the
        # third's, in the next wave.
        self.assertEqual(members[:2], sorted(ran[:2]))
        self.assertEqual(members[1:], ran[2:])
        self.assertLessEqual(sample.most, 2)
        for h in members:
            self.assertEqual('enabled', self._status(h).status)
        self.assertEqual([], self._campaigns())  # finished: removed
        self.assertEqual([], os.listdir(there))  # no local state file

    def test_sigterm_ends_the_step_and_is_recorded(self):
        # Issue 21 item 5: SIGTERM (a CI cancel) left the step running in
        # its own session.  Now the maintain ends the step's process
        # group, records "exec interrupted", exits 130; a rerun refuses
        # to start it again without --rerun-exec.
        host = sorted(self.members)[0]
        marker = os.path.join(self.tmp, 'step-pid')
        done = os.path.join(self.tmp, 'step-finished')
        exec_cmd = 'echo $$ > %s; sleep 30; touch %s' % (marker, done)
        args = ['compute', 'node', 'maintain', host, '--exec', exec_cmd,
                '-f', 'json']
        run = self._start(args, self.tmp)
        deadline = time.time() + 300
        while time.time() < deadline and not (
                os.path.exists(marker) and open(marker).read().strip()):
            time.sleep(0.2)
        pgid = int(open(marker).read())
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=120)
        self.assertEqual(130, run.returncode, err)
        [row] = json.loads(out)
        self.assertEqual('interrupted', row['Result'])
        # No process of the step's group runs any more.  (A zombie may
        # still be listed for a moment: the step's sleep, orphaned when its
        # shell died, waits for PID 1 to reap it; killpg(pgid, 0) counts
        # it, and failed once in a clean-clone run for that reason.)
        self.assertEqual([], live_in_group(pgid))
        time.sleep(1)
        self.assertFalse(os.path.exists(done))
        [agg] = self._campaigns()
        self.assertIn('exec-interrupted=', agg.metadata['host:' + host])
        again = self._start(args, self.tmp)
        out, err = again.communicate(timeout=600)
        self.assertEqual(1, again.returncode, err)
        [row] = json.loads(out)
        self.assertIn('--rerun-exec %s' % host, row['Message'])
        self.assertIn('interrupted', row['Message'])
        self.assertFalse(os.path.exists(done))
