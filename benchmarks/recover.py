#!/usr/bin/env python3
"""Benchmark: recover-all vs the seed runbook's one process per server.

Not a test.  Side by side in one run, on the minicloud:

``reboot-ours``     N servers on ``--host`` whose guests the fake
                    hypervisor forgot (``minicloud restart-compute``), then
                    ``openstack server recover-all HOST --hard`` (one process).
``reboot-seed``     the same situation, then the seed's loop: one
                    ``openstack server reboot --hard --wait UUID`` process
                    per server, in turn.
``evacuate-ours``   N servers on ``--dead-host``, its nova-compute killed and
                    forced down, then ``openstack server recover-all HOST
                    --dead --target-host T`` (one process; ends with the
                    servers running again).
``evacuate-seed``   the same, then one ``openstack server evacuate --host T
                    UUID`` process per server (OSC 10.5.0's ``--wait`` never
                    returns, so the clock runs until every server left the
                    host), then one ``openstack server start UUID`` process
                    per server (they arrive stopped from API 2.95) until all
                    are ACTIVE.

Preparation (boot, restart, kill) is not timed.  Each variant's clock stops
when all N servers are ACTIVE with power state running.  Printed: wall
time per variant and the seed/ours ratio per scenario.  Holds the
functional-test lock of the rig while it runs; deletes its servers and
restores the killed compute host at the end.

    .venv/bin/python benchmarks/recover.py [--servers 50] [--variants ...]
"""

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE = os.environ.get('MINICLOUD_DIR') or os.path.join(REPO, '.minicloud')
CLOUDS_YAML = os.path.join(STATE, 'clouds.yaml')
OPENSTACK = os.path.join(os.path.dirname(sys.executable), 'openstack')
MINICLOUD = os.path.join(REPO, 'tools', 'minicloud', 'minicloud')
VARIANTS = ('reboot-ours', 'reboot-seed', 'evacuate-ours', 'evacuate-seed')


def log(msg):
    sys.stderr.write('[bench %s] %s\n' % (time.strftime('%H:%M:%S'), msg))
    sys.stderr.flush()


def connect():
    import openstack.config
    import openstack.connection
    config = openstack.config.OpenStackConfig(config_files=[CLOUDS_YAML])
    return openstack.connection.Connection(
        config=config.get_one(cloud='minicloud'))


def osc(*args, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    env['OS_CLIENT_CONFIG_FILE'] = CLOUDS_YAML
    res = subprocess.run([OPENSTACK, '--os-cloud', 'minicloud'] + list(args),
                         capture_output=True, text=True, env=env)
    if check and res.returncode != 0:
        raise RuntimeError('openstack %s: exit %d: %s' % (
            ' '.join(args), res.returncode, res.stderr[-2000:]))
    return res


def minicloud(*args):
    subprocess.run([MINICLOUD] + list(args), check=True,
                   capture_output=True, text=True)


class Bench(object):

    def __init__(self, args):
        self.args = args
        self.conn = connect()
        self.c = self.conn.compute
        with open(os.path.join(STATE, 'minicloud.json')) as f:
            self.state = json.load(f)
        self.created = []

    # -- helpers
    def boot(self, host, n):
        ids = []
        for i in range(n):
            s = self.c.create_server(
                name='bench-recover-%s-%d' % (host, i),
                flavor_id=self.state['flavor']['id'],
                image_id=self.state['image']['id'], networks='none',
                availability_zone='nova:%s' % host)
            ids.append(s.id)
            self.created.append(s.id)
        self.wait(ids, lambda s: s.status == 'ACTIVE' and not s.task_state,
                  'ACTIVE', timeout=900)
        return ids

    def servers(self, ids):
        want = set(ids)
        for attempt in range(10):
            try:
                return [s for s in self.c.servers(details=True,
                                                  all_projects=True)
                        if s.id in want]
            except Exception as exc:  # a loaded 2-core rig gives 5xx
                if attempt == 9:
                    raise
                log('listing servers failed (%s); retrying' % exc)
                time.sleep(2)

    def wait(self, ids, pred, what, timeout=1800, interval=0.5):
        deadline = time.time() + timeout
        while True:
            found = self.servers(ids)
            if len(found) == len(ids) and all(pred(s) for s in found):
                return
            bad = [s for s in found if s.status == 'ERROR']
            if bad:
                raise RuntimeError('%d server(s) went ERROR waiting for %s'
                                   % (len(bad), what))
            if time.time() > deadline:
                raise RuntimeError('not all %s within %ds' % (what, timeout))
            time.sleep(interval)

    def running(self, ids, **kw):
        self.wait(ids, lambda s: s.status == 'ACTIVE' and s.power_state == 1
                  and not s.task_state, 'running', **kw)

    def service(self, host):
        return [s for s in self.c.services(binary='nova-compute', host=host)
                if s.host == host][0]

    def wait_service(self, host, state):
        deadline = time.time() + 180
        while self.service(host).state != state:
            if time.time() > deadline:
                raise RuntimeError('%s not %s' % (host, state))
            time.sleep(1)

    def delete(self, ids):
        for sid in ids:
            self.c.delete_server(sid, ignore_missing=True)
        deadline = time.time() + 600
        while self.servers(ids) and time.time() < deadline:
            time.sleep(1)

    # -- reboot scenario
    def forget(self, host, ids):
        minicloud('restart-compute', host)
        self.wait_service(host, 'up')
        self.wait(ids, lambda s: s.power_state == 0, 'forgotten (NOSTATE)',
                  timeout=600)

    def reboot_ours(self, host, ids):
        t0 = time.time()
        res = osc('server', 'recover-all', host, '--hard', '--max-parallel',
                  str(self.args.max_parallel), '--poll-interval', '1', '-f',
                  'json', check=False)
        self.report(res)
        self.running(ids, timeout=300)
        return time.time() - t0

    def reboot_seed(self, host, ids):
        t0 = time.time()
        for sid in ids:
            osc('server', 'reboot', '--hard', '--wait', sid)
        self.running(ids)
        return time.time() - t0

    # -- evacuate scenario
    def kill(self, host):
        minicloud('kill-compute', host)
        svc = self.service(host)
        self.c.update_service_forced_down(svc, host, 'nova-compute', True)
        self.wait_service(host, 'down')

    def restore(self, host):
        minicloud('start-compute', host)
        svc = self.service(host)
        if svc.is_forced_down:
            self.c.update_service_forced_down(svc, host, 'nova-compute',
                                              False)
        # recover-all --dead disables the dead host (the reason names it)
        if svc.status == 'disabled' and (svc.disabled_reason or '').startswith(
                'osc-nodeops recover-all --dead'):
            self.c.enable_service(svc, host=host, binary='nova-compute')
        self.wait_service(host, 'up')

    def evacuate_ours(self, host, ids):
        t0 = time.time()
        res = osc('server', 'recover-all', host, '--dead', '--target-host',
                  self.args.target, '--max-parallel',
                  str(self.args.max_parallel), '--poll-interval', '1',
                  '-f', 'json', check=False)
        self.report(res)
        self.running(ids, timeout=300)
        return time.time() - t0

    def report(self, res):
        if res.returncode != 0:
            log('recover-all exited %d; not done:' % res.returncode)
            try:
                rows = json.loads(res.stdout)
            except ValueError:
                rows = []
            for r in rows:
                if r['Result'] not in ('running', 'evacuated', 'skipped'):
                    log('  %s %s %s %s' % (r['Name'], r['Method'],
                                           r['Result'], r['Message']))
            log(res.stderr[-3000:])

    def evacuate_seed(self, host, ids):
        t0 = time.time()
        for sid in ids:
            osc('server', 'evacuate', '--host', self.args.target, sid)
        self.wait(ids, lambda s: s.compute_host != host and not s.task_state
                  and s.status in ('ACTIVE', 'SHUTOFF'), 'evacuated')
        for s in self.servers(ids):
            if s.status == 'SHUTOFF':
                osc('server', 'start', s.id)
        self.running(ids)
        return time.time() - t0

    def run(self):
        a = self.args
        results = {}
        for variant in a.variants:
            if variant.startswith('reboot'):
                ids = self.boot(a.host, a.servers)
                log('%s: %d servers on %s; restarting its compute' % (
                    variant, len(ids), a.host))
                self.forget(a.host, ids)
                fn = self.reboot_ours if variant.endswith('ours') \
                    else self.reboot_seed
                results[variant] = fn(a.host, ids)
            else:
                ids = self.boot(a.dead_host, a.servers)
                log('%s: %d servers on %s; killing its compute' % (
                    variant, len(ids), a.dead_host))
                self.kill(a.dead_host)
                try:
                    fn = self.evacuate_ours if variant.endswith('ours') \
                        else self.evacuate_seed
                    results[variant] = fn(a.dead_host, ids)
                finally:
                    self.restore(a.dead_host)
            log('%s: %.1fs' % (variant, results[variant]))
            self.delete(ids)
        return results


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--servers', type=int, default=50)
    p.add_argument('--host', default='c01')
    p.add_argument('--dead-host', default='c03')
    p.add_argument('--target', default='c02')
    p.add_argument('--max-parallel', type=int, default=10)
    p.add_argument('--variants', nargs='+', default=list(VARIANTS),
                   choices=VARIANTS)
    p.add_argument('--json', action='store_true')
    args = p.parse_args()
    lock = open(os.path.join(STATE, 'functional.lock'), 'a+')
    log('waiting for the rig lock')
    fcntl.flock(lock, fcntl.LOCK_EX)
    bench = Bench(args)
    try:
        results = bench.run()
    finally:
        bench.delete(bench.created)
        fcntl.flock(lock, fcntl.LOCK_UN)
    out = {'servers': args.servers, 'seconds': results}
    for scenario in ('reboot', 'evacuate'):
        ours = results.get(scenario + '-ours')
        seed = results.get(scenario + '-seed')
        if ours and seed:
            out[scenario + '_seed_over_ours'] = round(seed / ours, 2)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print('servers: %d' % args.servers)
        for k, v in results.items():
            print('%-15s %8.1f s' % (k, v))
        for scenario in ('reboot', 'evacuate'):
            key = scenario + '_seed_over_ours'
            if key in out:
                print('%s: seed loop / recover-all = %.2fx' % (
                    scenario, out[key]))


if __name__ == '__main__':
    main()
