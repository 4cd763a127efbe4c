#!/usr/bin/env python3
"""Benchmark: rolling maintenance of several hosts, three ways.

Not a test.  On ``--hosts`` compute hosts of the minicloud (default: up to
4), each with ``--servers`` servers (default 10), hypervisor timing on (a
live migration takes seconds), each variant cycles every host --
disable, empty, the step (``minicloud restart-compute HOST``: a reboot of
the fake hypervisor), wait until nova-compute is up again, re-enable:

``maintain-k1``  ``openstack compute node maintain --aggregate AGG
                 --max-hosts 1 --exec 'minicloud restart-compute {host}'``
                 (one process; AGG: an aggregate of the benchmark's hosts);
``maintain-k2``  the same with ``--max-hosts 2``;
``hand``         the loop operators write today, per host: ``openstack
                 compute service set --disable``, the seed's per-server
                 ``openstack server migrate --live-migration --wait UUID``
                 in turn, the step, polling ``openstack compute service
                 list`` until the host is up, ``service set --enable``.

Before each variant the servers are booted fresh (not timed) and deleted
after it.  Printed per variant: wall time, ratio to the hand loop, and the
most hosts ever disabled at once (the service list sampled every 0.5 s).
Holds the functional-test lock of the rig.  Uses hosts that hold no
server; when fewer than ``--hosts`` are free, grows the rig by what is
missing (``MINICLOUD_COMPUTES=N minicloud up``) and shrinks it back
afterwards (the extra hosts' services and providers deleted); restores
timing at the end.

    .venv/bin/python benchmarks/maintain.py [--hosts 4] [--servers 10]
"""

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import drain as bench  # noqa: E402  (the drain benchmark's helpers)

MINICLOUD = os.path.join(bench.REPO, 'tools', 'minicloud', 'minicloud')
VARIANTS = ('maintain-k1', 'maintain-k2', 'hand')


def osc(*args, check=True):
    res = subprocess.run([bench.OPENSTACK, '--os-cloud', 'minicloud']
                         + [str(a) for a in args], capture_output=True,
                         text=True, env=bench.cli_env())
    if check and res.returncode != 0:
        raise RuntimeError('openstack %s exited %d: %s' % (
            ' '.join(map(str, args)), res.returncode, res.stderr[-2000:]))
    return res


class Sampler(threading.Thread):
    def __init__(self, conn, hosts):
        super(Sampler, self).__init__(daemon=True)
        self.conn, self.hosts, self.most = conn, set(hosts), 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.5):
            try:
                down = [s for s in self.conn.compute.services(
                    binary='nova-compute') if s.host in self.hosts
                    and s.status == 'disabled']
                self.most = max(self.most, len(down))
            except Exception:
                pass


def run_maintain(agg, k):
    # An aggregate of the benchmark's hosts is the scope: a host of the
    # rig that some test left disabled does not take a place in the budget.
    osc('compute', 'node', 'maintain', '--aggregate', agg, '--max-hosts', k,
        '--exec', '%s restart-compute {host}' % MINICLOUD,
        '--exec-env', 'MINICLOUD_DIR', '--max-parallel', 8,
        '--poll-interval', 1, '-f', 'json')


def run_hand(conn, hosts, ids):
    idset = set(ids)
    for host in hosts:
        osc('compute', 'service', 'set', '--disable', host, 'nova-compute')
        for s in bench.on_host(conn, host, idset):
            osc('server', 'migrate', '--live-migration', '--wait', s.id)
        subprocess.run([MINICLOUD, 'restart-compute', host], check=True,
                       capture_output=True)
        since = time.time()
        while True:
            rows = json.loads(osc('compute', 'service', 'list', '--host',
                                  host, '--service', 'nova-compute', '-f',
                                  'json').stdout)
            if rows and rows[0]['State'] == 'up' and time.time() - since > 3:
                break
            time.sleep(1)
        osc('compute', 'service', 'set', '--enable', host, 'nova-compute')


def rig_state():
    with open(os.path.join(bench.STATE, 'minicloud.json')) as f:
        return json.load(f)


def rig_up(state, computes):
    """``MINICLOUD_COMPUTES=N minicloud up`` keeping the other settings;
    a lower N also deletes the extra hosts' services and providers."""
    settings = state.get('settings') or {}
    env = dict(os.environ, MINICLOUD_COMPUTES=str(computes))
    if settings.get('host_size'):
        env['MINICLOUD_HOST_SIZE'] = ','.join(map(str,
                                                  settings['host_size']))
    argv = [MINICLOUD, 'up']
    if settings.get('token_ttl'):
        argv += ['--token-ttl', str(settings['token_ttl'])]
    t0 = time.time()
    subprocess.run(argv, check=True, capture_output=True, env=env,
                   timeout=1200)
    bench.log('minicloud up with %d computes: %.0f s' % (
        computes, time.time() - t0))
    return rig_state()


def restore(state, computes):
    state = rig_up(state, computes)
    conn = bench.connect()
    try:
        left = sorted(s.host for s in conn.compute.services(
            binary='nova-compute'))
    finally:
        conn.close()
    if left != sorted(state['compute_hosts']):
        raise RuntimeError('rig not restored: nova-compute on %s' % left)
    bench.log('rig back to %s' % ' '.join(left))


def delete(conn, ids):
    for sid in ids:
        conn.compute.delete_server(sid, ignore_missing=True)
    bench.wait_until(lambda: not [s for s in conn.compute.servers(
        all_projects=True) if s.id in set(ids)], 300, 'servers deleted')


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--hosts', type=int, default=4)
    p.add_argument('--servers', type=int, default=10)
    p.add_argument('--variants', nargs='+', default=list(VARIANTS),
                   choices=VARIANTS)
    args = p.parse_args()
    # SIGTERM (timeout(1)) still runs the clean-up below.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    lock = open(os.path.join(bench.STATE, 'functional.lock'), 'a+')
    bench.log('waiting for the rig lock')
    fcntl.flock(lock, fcntl.LOCK_EX)
    state = rig_state()
    before = len(state['compute_hosts'])
    conn = bench.connect()
    # Hosts that hold no server (a server some test left behind would be
    # drained too, or block the drain); the rig grows by what is missing.
    busy = {s.compute_host for s in conn.compute.servers(all_projects=True)}
    free = [h for h in state['compute_hosts'] if h not in busy]
    grow = max(0, args.hosts - len(free))
    if grow:
        bench.log('%s hold servers; growing the rig from %d to %d compute '
                  'hosts' % (' '.join(sorted(busy - {None})) or 'no host',
                             before, before + grow))
        try:
            state = rig_up(state, before + grow)
        except BaseException:
            restore(state, before)
            raise
        free += state['compute_hosts'][before:]
    hosts = free[:args.hosts]
    bench.log('hosts: %s' % ' '.join(hosts))
    results = {}
    agg = None
    try:
        agg = conn.compute.create_aggregate(name='bench-maintain-%d'
                                            % os.getpid())
        for h in hosts:
            conn.compute.add_host_to_aggregate(agg, h)
        subprocess.run([MINICLOUD, 'timing', 'on'], check=True,
                       capture_output=True)
        for variant in args.variants:
            ids = []
            try:
                for host in hosts:
                    bench.boot(conn, args.servers, host, ids)
                sampler = Sampler(conn, hosts)
                sampler.start()
                bench.log('%s: %d hosts x %d servers' % (
                    variant, len(hosts), args.servers))
                start = time.time()
                if variant == 'hand':
                    run_hand(conn, hosts, ids)
                else:
                    run_maintain(agg.name, int(variant[-1]))
                results[variant] = (time.time() - start, None)
                sampler.stop.set()
                sampler.join(5)
                results[variant] = (results[variant][0], sampler.most)
                bench.log('%s: %.1f s, at most %d disabled at once' % (
                    variant, results[variant][0], sampler.most))
            finally:
                bench.enable(conn, hosts)
                delete(conn, ids)
    finally:
        subprocess.run([MINICLOUD, 'timing', 'off'], capture_output=True)
        if agg is not None:
            for h in hosts:
                try:
                    conn.compute.remove_host_from_aggregate(agg, h)
                except Exception:
                    pass
            conn.compute.delete_aggregate(agg, ignore_missing=True)
        try:
            if grow:
                restore(state, before)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    hand = results.get('hand', (None,))[0]
    print('%-12s %9s %9s %s' % ('variant', 'seconds', 'hand/x',
                                'most disabled'))
    for variant in args.variants:
        secs, most = results[variant]
        print('%-12s %9.1f %9s %d' % (variant, secs, '%.2f' % (hand / secs)
                                      if hand else '-', most))


if __name__ == '__main__':
    main()
