#!/usr/bin/env python3
"""Benchmark: rolling maintenance of several hosts, four ways side by side.

Not a test.  On ``--hosts`` compute hosts of the minicloud (default 8),
each with ``--servers`` servers (default 6), hypervisor timing on (a
live migration takes seconds), each variant cycles every host --
disable, empty, the step (``minicloud restart-compute HOST``: a reboot of
the fake hypervisor), wait until nova-compute is up again, re-enable:

``maintain-k1``  ``openstack --debug compute node maintain --aggregate AGG
                 --max-hosts 1 --max-parallel 8 --poll-interval 1 --exec
                 'minicloud restart-compute {host}'`` (one process; AGG: an
                 aggregate of the benchmark's hosts);
``maintain-k2``  the same with ``--max-hosts 2`` (waves of two hosts, each
                 wave's drains at once on one poll of the cloud);
``maintain-k4``  the same with ``--max-hosts 4``;
``hand``         the loop operators write today, per host: ``openstack
                 compute service set --disable``, the seed's per-server
                 ``openstack server migrate --live-migration --wait UUID``
                 in turn, the step, polling ``openstack compute service
                 list`` until the host is up, ``service set --enable``.

Before each variant the servers are booted fresh (not timed) and deleted
after it.  Printed per variant: wall time, its ratio to maintain-k1 and to
the hand loop, the most hosts ever disabled at once (the service list
sampled every 0.5 s) and, for the maintain variants, the requests per poll
interval, counted from the ``--debug`` log of the run (keystoneauth logs
each request as ``REQ: curl -g -i -X GET "https://.../os-migrations?..."``;
the logs are kept, their paths printed): a wave's poll (``wave.WavePoll``)
makes exactly one ``GET /os-migrations`` of the whole cloud (no ``host``),
and one ``GET /servers/detail`` with ``changes-since`` (no ``host``)
when a host's servers are looked at, so requests per poll = (those
migration lists + those server lists) / those migration lists, and the
most requests of one poll (``max``) is its migration list and the server
lists logged before the next one.  Also
counted: a host's own polls (``/os-migrations?host=H&changes-since=...``,
the undrain's with ``--migrate-back``; none here) and every other GET
(planning, verification, leases, audit), per poll and by path.

Goals (issue 24), computed: maintain-k2 <= 0.55 x maintain-k1 and
maintain-k4 <= 0.35 x maintain-k1 in wall time; requests per poll the same
(within 0.2) for k1, k2 and k4.

Holds the functional-test lock of the rig.  Uses hosts that hold no
server; when fewer than ``--hosts`` are free, grows the rig by what is
missing (``MINICLOUD_COMPUTES=N minicloud up``) and shrinks it back
afterwards (the extra hosts' services and providers deleted); restores
timing at the end.

    .venv/bin/python benchmarks/maintain.py [--hosts 8] [--servers 6]
        [--memory-mbps 8]

``--memory-mbps`` slows the copy (8: about 8 s a move): where the copy,
not nova's control plane, takes most of a move, as on a real cloud, the
waves' parallelism is measured with less of the rig's own contention.
"""

import argparse
import collections
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import drain as bench  # noqa: E402  (the drain benchmark's helpers)

MINICLOUD = os.path.join(bench.REPO, 'tools', 'minicloud', 'minicloud')
VARIANTS = ('maintain-k1', 'maintain-k2', 'maintain-k4', 'hand')
MAINTAIN = VARIANTS[:3]
# Wall time of a variant over maintain-k1's, at most (issue 24).
GOALS = {'maintain-k2': 0.55, 'maintain-k4': 0.35}
SPREAD = 0.2   # requests per poll, the most they may differ between k
# keystoneauth's request line (session.py, _http_log_request): the URL
# is quoted when it carries a query.
REQ = re.compile(r'REQ: curl -g -i (?:--insecure |--cacert "[^"]*" )?'
                 r'-X (\w+) "?([^"\s]+)')
ID = re.compile(r'^([0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?'
                r'[0-9a-f]{12}|[0-9a-f]{32}|\d+)$')


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


def run_maintain(agg, k, debug_log, events):
    """The maintain, its ``--debug`` log (every request) to ``debug_log``,
    its events (``--events``) to ``events``."""
    # An aggregate of the benchmark's hosts is the scope: a host of the
    # rig that some test left disabled does not take a place in the budget.
    argv = [bench.OPENSTACK, '--os-cloud', 'minicloud', '--debug',
            'compute', 'node', 'maintain', '--aggregate', agg,
            '--max-hosts', str(k),
            '--exec', '%s restart-compute {host}' % MINICLOUD,
            '--exec-env', 'MINICLOUD_DIR', '--max-parallel', '8',
            '--poll-interval', '1', '--events', events, '-f', 'json']
    with open(debug_log, 'w') as err:
        res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err,
                             text=True, env=bench.cli_env())
    if res.returncode != 0:
        with open(debug_log, errors='replace') as f:
            tail = f.read()[-2000:]
        raise RuntimeError('maintain --max-hosts %s exited %d (log %s): %s'
                           % (k, res.returncode, debug_log, tail))


PHASES = ('plan', 'moves', 'step', 'up', 'undrain')


def phases(events):
    """Seconds of each phase of the waves, summed over them, from a run's
    ``--events`` (times to the second): ``plan`` from the wave to its
    first move, ``moves`` to the last host drained (its moves, their
    checks and the audit), ``step`` to the last
    ``--exec`` done, ``up`` to the last nova-compute up, ``undrain`` to the
    last host maintained."""
    with open(events) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    waves = []
    for rec in recs:
        if rec.get('state') == 'wave':
            waves.append([])
        elif waves:
            waves[-1].append(rec)
    total = dict.fromkeys(PHASES, 0.0)

    def at(rec):
        return time.mktime(time.strptime(rec['time'],
                                         '%Y-%m-%dT%H:%M:%SZ'))
    starts = [at(r) for r in recs if r.get('state') == 'wave']
    for t0, wave in zip(starts, waves):
        starts = [at(r) for r in wave if r.get('server')
                  and r.get('state') == 'start']
        drained = [at(r) for r in wave if r.get('state') == 'done'
                   and r.get('step') not in ('exec', 'wait', 'check')]
        marks = [t0, min(starts, default=t0), max(drained, default=t0)]
        for step, state in (('exec', 'done'), ('wait', 'done'),
                            ('undrain', 'host-done')):
            marks.append(max([at(r) for r in wave if r.get('step') == step
                              and r.get('state') == state],
                             default=marks[-1]))
        for name, a, b in zip(PHASES, marks, marks[1:]):
            total[name] += max(0.0, b - a)
    return total


def move_times(events):
    """``(moves, issue, move)``: the moves of a run's ``--events`` and
    their mean seconds from ``start`` (the executor starts it) to
    ``issued`` (nova's API answered the call: the metadata write and, at
    compute API 2.30, nova's synchronous pre-checks) and to ``moved``
    (verified on its destination), to the second."""
    with open(events) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    open_moves = {}
    issue, move = [], []
    for rec in recs:
        if rec.get('step') != 'maintain' or not rec.get('server'):
            continue
        t = time.mktime(time.strptime(rec['time'], '%Y-%m-%dT%H:%M:%SZ'))
        key = rec['server']
        if rec.get('state') == 'start':
            open_moves[key] = t
        elif rec.get('state') == 'issued' and key in open_moves:
            issue.append(t - open_moves[key])
        elif rec.get('state') == 'moved' and key in open_moves:
            move.append(t - open_moves.pop(key))
    return (len(move), sum(issue) / len(issue) if issue else 0.0,
            sum(move) / len(move) if move else 0.0)


def endpoint_path(url):
    """``/os-migrations``, ``/servers/{id}``...: the path after the API
    version (or the endpoint's), IDs replaced."""
    path = urllib.parse.urlsplit(url).path
    parts = [p for p in path.split('/') if p]
    for i, part in enumerate(parts):
        if re.match(r'^v\d+(\.\d+)?$', part):
            parts = parts[i + 1:]
            if parts and re.match(r'^[0-9a-f]{32}$', parts[0]):
                parts = parts[1:]   # an endpoint with the project's ID
            break
    return '/' + '/'.join('{id}' if ID.match(p) else p for p in parts)


def count_requests(debug_log):
    """The requests of a run's ``--debug`` log, by kind: ``polls`` (the
    wave's cloud-wide migration lists), ``poll_servers`` (its
    changes-since server lists), ``host_polls`` (a host's own migration
    lists since a time), ``other`` (every other GET, by path) and
    ``writes`` (the rest); ``poll_max``: the most requests of one poll (its
    migration list and the changes-since server lists logged after it,
    before the next poll's)."""
    out = {'polls': 0, 'poll_servers': 0, 'host_polls': 0,
           'other': collections.Counter(), 'writes': 0, 'poll_max': 0}
    this_poll = 0
    with open(debug_log, errors='replace') as f:
        for line in f:
            found = REQ.search(line)
            if not found:
                continue
            method, url = found.groups()
            if method != 'GET':
                out['writes'] += 1
                continue
            path = endpoint_path(url)
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
            since = 'changes-since' in query
            if path == '/os-migrations' and 'host' not in query:
                out['polls'] += 1
                this_poll = 1
            elif path == '/os-migrations' and since:
                out['host_polls'] += 1
            elif (path == '/servers/detail' and since
                  and 'host' not in query):
                out['poll_servers'] += 1
                this_poll += 1
            else:
                out['other']['GET %s%s' % (path, '?host=' if 'host' in query
                                           else '')] += 1
            out['poll_max'] = max(out['poll_max'], this_poll)
    return out


def per_poll(counts):
    """Requests per poll interval, or None without a poll."""
    if not counts or not counts['polls']:
        return None
    return (counts['polls'] + counts['poll_servers']) / counts['polls']


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
    p.add_argument('--hosts', type=int, default=8)
    p.add_argument('--servers', type=int, default=6)
    p.add_argument('--variants', nargs='+', default=list(VARIANTS),
                   choices=VARIANTS)
    p.add_argument('--memory-mbps', type=float, default=None,
                   help='the hypervisor\'s copy speed of a live migration '
                   '(MiB/s; default: minicloud timing on\'s, 25: the tiny '
                   'flavor\'s 64 MiB in about 2.6 s)')
    args = p.parse_args()
    # Every variant, in the order of VARIANTS (side by side).
    args.variants = [v for v in VARIANTS if v in args.variants]
    logs = tempfile.mkdtemp(prefix='bench-maintain-')
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
    counts = {}
    agg = None
    try:
        agg = conn.compute.create_aggregate(name='bench-maintain-%d'
                                            % os.getpid())
        for h in hosts:
            conn.compute.add_host_to_aggregate(agg, h)
        subprocess.run([MINICLOUD, 'timing', 'on'], check=True,
                       capture_output=True)
        if args.memory_mbps:
            subprocess.run([MINICLOUD, 'timing', 'set', 'memory-mbps=%g'
                            % args.memory_mbps], check=True,
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
                    debug_log = os.path.join(logs, '%s.debug.log' % variant)
                    events = os.path.join(logs, '%s.events' % variant)
                    run_maintain(agg.name, int(variant[-1]), debug_log,
                                 events)
                results[variant] = (time.time() - start, None)
                sampler.stop.set()
                sampler.join(5)
                results[variant] = (results[variant][0], sampler.most)
                bench.log('%s: %.1f s, at most %d disabled at once' % (
                    variant, results[variant][0], sampler.most))
                if variant != 'hand':
                    counts[variant] = count_requests(debug_log)
                    counts[variant]['phases'] = phases(events)
                    counts[variant]['moves'] = move_times(events)
                    bench.log('%s: %d polls, %d changes-since server lists; '
                              'its --debug log: %s' % (
                                  variant, counts[variant]['polls'],
                                  counts[variant]['poll_servers'],
                                  debug_log))
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
    report(args, hosts, results, counts, logs)


def ratio(a, b):
    return '%.2f' % (a / b) if a and b else '-'


def report(args, hosts, results, counts, logs):
    k1 = results.get('maintain-k1', (None,))[0]
    hand = results.get('hand', (None,))[0]
    print('%d hosts x %d servers; maintain --max-parallel 8 '
          '--poll-interval 1; live migrations copy at %g MiB/s; --debug '
          'logs in %s' % (len(hosts), args.servers,
                          args.memory_mbps or 25, logs))
    print('%-12s %8s %6s %7s %5s %9s %4s %6s %9s %14s' % (
        'variant', 'seconds', 'x/k1', 'x/hand', 'most', 'req/poll', 'max',
        'polls', 'srv lists', 'other GET/poll'))
    for variant in args.variants:
        secs, most = results[variant]
        c = counts.get(variant)
        rp = per_poll(c)
        other = sum(c['other'].values()) + c['host_polls'] if c else None
        print('%-12s %8.1f %6s %7s %5d %9s %4s %6s %9s %14s' % (
            variant, secs, ratio(secs, k1), ratio(secs, hand), most,
            '%.2f' % rp if rp is not None else '-',
            c['poll_max'] if c else '-',
            c['polls'] if c else '-', c['poll_servers'] if c else '-',
            '%.2f' % (other / c['polls']) if c and c['polls'] else '-'))
    print('(x/k1, x/hand: wall time over maintain-k1\'s, over the hand '
          'loop\'s; most: hosts disabled at once; req/poll: (migration lists '
          '+ changes-since server lists) / migration lists of the waves\' '
          'polls; max: the most requests of one poll; other GET/poll: every '
          'other GET over the polls)')
    for variant in args.variants:
        c = counts.get(variant)
        if not c:
            continue
        top = ', '.join('%s %d' % kv for kv in c['other'].most_common(6))
        print('%s: other GETs %d (%s)%s; %d writes' % (
            variant, sum(c['other'].values()), top or 'none',
            '; a host\'s own polls %d' % c['host_polls']
            if c['host_polls'] else '', c['writes']))
    print('seconds of the waves\' phases, summed over the waves (from '
          'each run\'s --events): %s' % ', '.join(PHASES))
    for variant in args.variants:
        c = counts.get(variant)
        if c:
            print('%-12s %s   (%d moves: %.1f s to issue, %.1f s to '
                  'verified, each)' % ((variant, ' '.join(
                      '%s %.0f' % (k, c['phases'][k]) for k in PHASES))
                      + c['moves']))
    print()
    for variant, most in GOALS.items():
        if variant not in results or not k1:
            print('goal: %s <= %.2f x maintain-k1: not measured' % (
                variant, most))
            continue
        got = results[variant][0] / k1
        print('goal: %s <= %.2f x maintain-k1: %.2f, %s' % (
            variant, most, got, 'met' if got <= most else 'NOT met'))
    rates = {v: per_poll(counts.get(v)) for v in MAINTAIN}
    known = [r for r in rates.values() if r is not None]
    if len(known) < len(MAINTAIN):
        print('goal: requests per poll the same (within %.1f) for k1, k2, '
              'k4: not measured (%s)' % (SPREAD, ', '.join(
                  '%s %s' % (v, '%.2f' % r if r is not None else 'none')
                  for v, r in rates.items())))
    else:
        spread = max(known) - min(known)
        print('goal: requests per poll the same (within %.1f) for k1, k2, '
              'k4: %s (spread %.2f), %s' % (
                  SPREAD, ', '.join('%.2f' % r for r in known), spread,
                  'met' if spread <= SPREAD else 'NOT met'))
        print('the most requests of one poll: %s' % ', '.join(
            '%s %d' % (v, counts[v]['poll_max']) for v in MAINTAIN))


if __name__ == '__main__':
    main()
