#!/usr/bin/env python3
"""Benchmark: the drain's dry run (the plan and its pre-flight) at scale.

Not a test.  Boots servers spread over the rig's compute hosts (default 200
of the tiny flavor, round-robin; the fake driver boots them fast), then
times ``openstack compute node drain HOST... --dry-run -f json`` for each
``--plans`` entry (default: one host, then two hosts at once; the best of
``--repeat`` runs, the ``openstack`` process's start-up included, which is
shown apart: ``openstack compute node drain --help``) and counts the API
requests of one more run, from its own ``--debug`` request lines (exact
also when someone else uses the rig meanwhile; the services' access logs
are printed as a cross-check, ``alog``):

``lists``     list calls (servers by host, migrations, services,
              hypervisors, aggregates, server groups, ports by host,
              placement providers);
``per host``  placement GETs of one provider (inventories, usages,
              allocations): two per candidate host plus one per drained
              host;
``per srv``   GETs of one server, flavor, port, server group or consumer
              allocation: what a plan would cost if it looked at each
              server (goal: none);
``other``     version discovery and keystone.

Side by side, ``loop`` is the same plan's facts read the way a per-server
script reads them (GET the server, list its ports, GET its allocation:
three calls per server), for scale.  Everything is measured at each
``--sizes`` step (default ``20,200``: booted up to 20 servers, measured,
booted up to 200, measured again), so that the table shows what grows with
the servers and what does not.  Goals (issue 12): under 5 s wall time for
200 servers, O(hosts) list calls, no per-server GETs.

Holds the functional-test lock of the rig while it runs (the tests, and
other benchmarks, wait), raises the admin project's instance quota if it
would not hold the servers and puts it back, and deletes every server it
booted, also when it is stopped (Ctrl-C or SIGTERM).

    .venv/bin/python benchmarks/plan.py [--sizes 20,200] [--plans c01 c01,c02]
"""

import argparse
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks import drain as house  # noqa: E402  (same directory)

STATE = house.STATE
OPENSTACK = house.OPENSTACK
LOGS = ('nova-api-access.log', 'neutron-api-access.log',
        'placement-access.log', 'keystone-access.log')
# The access logs' request line, and --debug's "REQ: curl ... -X GET URL".
ACCESS = re.compile(r'"(GET|POST|PUT|DELETE|PATCH|HEAD) ([^ ?"]+)')
DEBUG = re.compile(r'^REQ: curl -g -i -X (GET|POST|PUT|DELETE|PATCH|HEAD) '
                   r'"?https?://[^/ "]+([^ ?"]*)')
UUID = r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
LISTS = (
    r'/servers/detail$', r'/servers$', r'/os-migrations$',
    r'/os-services$', r'/os-hypervisors(/detail)?$', r'/os-aggregates$',
    r'/os-server-groups$', r'/flavors(/detail)?$', r'/v2\.0/ports(\.json)?$',
    r'/resource_providers$',
)
PER_HOST = (r'/resource_providers/%s/(inventories|usages|allocations)$'
            % UUID,)
PER_SERVER = (
    r'/servers/%s(/.*)?$' % UUID, r'/flavors/[^/]+(/.*)?$',
    r'/os-server-groups/%s$' % UUID, r'/v2\.0/ports/%s$' % UUID,
    r'/allocations/%s$' % UUID,
)

log = house.log


class Stop(BaseException):
    """SIGTERM: leave through the cleanup."""


def on_sigterm(signum, frame):
    raise Stop()


def classify(requests):
    """Counts of ``(method, path)`` pairs by kind, and by path."""
    out = {'lists': 0, 'per_host': 0, 'per_server': 0, 'other': 0,
           'total': 0, 'paths': {}}
    for method, path in requests:
        out['total'] += 1
        kind = 'other'
        if method == 'GET':
            if any(re.search(p, path) for p in LISTS):
                kind = 'lists'
            elif any(re.search(p, path) for p in PER_HOST):
                kind = 'per_host'
            elif any(re.search(p, path) for p in PER_SERVER):
                kind = 'per_server'
        out[kind] += 1
        key = '%s %s' % (method, re.sub(UUID, '<id>', path))
        out['paths'][key] = out['paths'].get(key, 0) + 1
    return out


def parse(lines, pattern):
    found = []
    for line in lines:
        m = pattern.search(line)
        if m:
            found.append((m.group(1), m.group(2)))
    return found


def measure(fn):
    """Run ``fn`` (returns ``(extra, debug lines or None)``): wall time,
    the requests it made (from its own --debug lines when it has them,
    else the access logs) and, as a cross-check, what the services'
    access logs saw meanwhile (other users of the rig count there too)."""
    windows = [house.LogWindow(name) for name in LOGS]
    for w in windows:
        w.start()
    t0 = time.monotonic()
    extra, debug = fn()
    wall = time.monotonic() - t0
    time.sleep(0.5)  # the services write their log lines after answering
    logged = []
    for w in windows:
        logged.extend(w.lines())
    seen = parse(logged, ACCESS)
    result = classify(parse(debug, DEBUG) if debug is not None else seen)
    result['access_log_total'] = len(seen)
    result['wall'] = wall
    result.update(extra)
    return result


def dry_run(hosts, debug=False):
    def run():
        argv = [OPENSTACK, '--os-cloud', 'minicloud']
        if debug:
            argv.append('--debug')
        res = subprocess.run(
            argv + ['compute', 'node', 'drain'] + list(hosts)
            + ['--dry-run', '-f', 'json'],
            capture_output=True, text=True, env=house.cli_env())
        if res.returncode not in (0, 1):
            raise RuntimeError('dry run exited %d: %s' % (
                res.returncode, res.stderr[-2000:]))
        rows = json.loads(res.stdout)
        return ({'rows': len(rows), 'exit': res.returncode,
                 'planned': sum(1 for r in rows
                                if r['Result'] == 'planned'),
                 'fits': sum(1 for r in rows if r['Fits'] is True)},
                res.stderr.splitlines() if debug else None)
    return run


def loop(hosts):
    """Per-server reads of the same facts (for scale), counted by a
    session hook (this process's requests only)."""
    def run():
        c = house.connect()
        sent = []
        c.session.session.hooks['response'].append(
            lambda resp, *a, **kw: sent.append(
                'REQ: curl -g -i -X %s %s' % (resp.request.method,
                                               resp.request.url)))
        n = 0
        for host in hosts:
            for s in list(c.compute.servers(all_projects=True,
                                            compute_host=host)):
                c.compute.get_server(s.id)
                list(c.network.ports(device_id=s.id))
                c.placement.get('/allocations/%s' % s.id)
                n += 1
        c.close()
        return {'rows': n, 'exit': 0, 'planned': n, 'fits': None}, sent
    return run


def ours(conn):
    """The benchmark's servers, listed in pages: the rig's neutron
    refuses a request line over 4094 bytes, and nova asks it for the ports
    of every server of a listing at once (about 100 servers at most)."""
    import openstack.exceptions
    for attempt in range(5):
        try:
            return [s for s in conn.compute.servers(
                all_projects=True, name='^bench-plan-', limit=40)]
        except openstack.exceptions.HttpException as exc:
            log('server list failed (%s); again' % exc)
            time.sleep(3)
    raise RuntimeError('cannot list the servers')


def boot_to(conn, state, hosts, want, created):
    """Boot servers (round-robin over ``hosts``, one multi-create request
    per host) until ``created`` holds ``want``; wait until all are
    ACTIVE."""
    need = want - len(created)
    if need <= 0:
        return
    per = {h: need // len(hosts) + (1 if i < need % len(hosts) else 0)
           for i, h in enumerate(hosts)}
    for host, count in per.items():
        while count > 0:  # one request per 20 servers
            n = min(count, 20)
            srv = conn.compute.create_server(
                name='bench-plan-%s' % host, flavor_id=state['flavor']['id'],
                image_id=state['image']['id'], networks='none',
                availability_zone='nova:%s' % host, min_count=n,
                max_count=n)
            created.append(srv.id)
            count -= n
        log('booting %d on %s' % (per[host], host))
    deadline = time.time() + 900
    while True:
        mine = ours(conn)
        for s in mine:
            if s.id not in created:
                created.append(s.id)
        errors = [s for s in mine if s.status == 'ERROR']
        if errors:
            raise RuntimeError('%d server(s) went ERROR, e.g. %s: %s' % (
                len(errors), errors[0].id, errors[0].fault))
        ready = [s for s in mine if s.status == 'ACTIVE'
                 and not s.task_state]
        if len(ready) >= want:
            return
        if time.time() > deadline:
            raise RuntimeError('only %d of %d servers ACTIVE' % (
                len(ready), want))
        time.sleep(2)


def cleanup(conn, created):
    log('deleting %d server(s)' % len(created))
    for sid in created:
        try:
            conn.compute.delete_server(sid, ignore_missing=True)
        except Exception as exc:
            log('delete %s: %s' % (sid, exc))
    deadline = time.time() + 600
    while time.time() < deadline:
        left = ours(conn)
        for s in left:
            if s.id not in created:  # booted, not listed yet when stopped
                conn.compute.delete_server(s.id, ignore_missing=True)
                created.append(s.id)
        if not left:
            return
        time.sleep(2)
    log('servers still there after 600 s: %d' % len(ours(conn)))


def quota_room(conn, project, want):
    """Raise the project's instance quota so that ``want`` more servers
    fit; returns the old limit to restore (None when it was enough)."""
    q = conn.compute.get_quota_set(project, usage=True)
    limit = q.instances
    used = (q.usage or {}).get('instances', 0)
    if limit < 0 or used + want <= limit:
        return None
    conn.compute.update_quota_set(project, instances=used + want)
    cores = q.cores
    if cores >= 0 and (q.usage or {}).get('cores', 0) + want > cores:
        conn.compute.update_quota_set(
            project, cores=(q.usage or {}).get('cores', 0) + want)
    log('instance quota of the admin project %d -> %d (restored at the '
        'end)' % (limit, used + want))
    return {'instances': limit, 'cores': cores}


def startup():
    """Seconds the ``openstack`` process takes to start and load the
    plugin, without a request (the best of three)."""
    best = None
    for _ in range(3):
        t0 = time.monotonic()
        subprocess.run([OPENSTACK, 'compute', 'node', 'drain', '--help'],
                       capture_output=True, env=house.cli_env())
        took = time.monotonic() - t0
        best = took if best is None else min(best, took)
    return best


def report(results, start):
    print('openstack process start-up (compute node drain --help): %.2f s'
          % start)
    print('dry run of `compute node drain HOSTS --dry-run`: wall time and '
          'API requests')
    print('%-7s %-12s %7s %6s %7s %6s %9s %8s %6s %6s %5s' % (
        'servers', 'plan', 'wall s', 'rows', 'total', 'lists',
        'per host', 'per srv', 'other', 'alog', 'exit'))
    for r in results:
        print('%-7d %-12s %7.2f %6d %7d %6d %9d %8d %6d %6d %5d' % (
            r['servers'], r['plan'], r['wall'], r['rows'], r['total'],
            r['lists'], r['per_host'], r['per_server'], r['other'],
            r['access_log_total'], r['exit']))
    big = max((r['servers'] for r in results), default=0)
    for r in results:
        if r['servers'] != big or r['plan'].startswith('loop'):
            continue
        print('%s, %d servers: %.2f s (goal < 5 s: %s); %d per-server GETs '
              '(goal 0: %s)' % (
                  r['plan'], big, r['wall'],
                  'met' if r['wall'] < 5 else 'NOT met', r['per_server'],
                  'met' if r['per_server'] == 0 else 'NOT met'))
    plans = sorted({r['plan'] for r in results})
    sizes = sorted({r['servers'] for r in results})
    if len(sizes) > 1:
        for plan in plans:
            rs = [r for r in results if r['plan'] == plan]
            if len(rs) > 1:
                print('%s: list calls %s, per-server GETs %s at %s servers'
                      % (plan, [r['lists'] for r in rs],
                         [r['per_server'] for r in rs], sizes))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', default='20,200',
                        help='server counts to measure at (booted up to '
                             'each in turn; default 20,200)')
    parser.add_argument('--plans', nargs='+', default=['c01', 'c01,c02'],
                        help='host sets to dry-run, comma-separated '
                             '(default: c01, then c01,c02)')
    parser.add_argument('--no-loop', action='store_true',
                        help='skip the per-server loop for scale')
    parser.add_argument('--repeat', type=int, default=3,
                        help='timed runs per plan (the best is shown; '
                             'default 3)')
    parser.add_argument('--json', action='store_true')
    parser.add_argument('--paths', action='store_true',
                        help='print the requests of each run by path')
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.split(',') if v]
    signal.signal(signal.SIGTERM, on_sigterm)
    with open(os.path.join(STATE, 'minicloud.json')) as f:
        state = json.load(f)
    lock = open(os.path.join(STATE, 'functional.lock'), 'a+')
    log('waiting for the rig lock')
    fcntl.flock(lock, fcntl.LOCK_EX)
    conn = house.connect()
    hosts = sorted(s.host for s in conn.compute.services(
        binary='nova-compute'))
    project = state['projects']['admin']
    created = []
    results = []
    quota = None
    try:
        house.enable(conn, hosts)
        quota = quota_room(conn, project, max(sizes))
        for size in sizes:
            boot_to(conn, state, hosts, size, created)
            log('%d servers ACTIVE on %s' % (len(created), ', '.join(hosts)))
            for plan in args.plans:
                plan_hosts = plan.split(',')
                walls = [measure(dry_run(plan_hosts))['wall']
                         for _ in range(args.repeat)]
                # the same run again with --debug: its own requests
                r = measure(dry_run(plan_hosts, debug=True))
                r.update(servers=size, plan=plan, wall=min(walls),
                         walls=walls)
                results.append(r)
                log('%s: %.2f s (best of %d), %d requests' % (
                    plan, r['wall'], len(walls), r['total']))
                if not args.no_loop and plan == args.plans[0]:
                    r = measure(loop(plan_hosts))
                    r.update(servers=size, plan='loop ' + plan)
                    results.append(r)
    except (KeyboardInterrupt, Stop):
        log('stopped: cleaning up')
        raise SystemExit(130)
    finally:
        try:
            try:
                cleanup(conn, created)
            finally:
                if quota is not None:
                    conn.compute.update_quota_set(project, **quota)
                    log('quota restored: %s' % quota)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    report(results, startup())
    if args.paths:
        for r in results:
            print('\n%s, %d servers' % (r['plan'], r['servers']))
            for path, n in sorted(r['paths'].items()):
                print('  %4d %s' % (n, path))
    if args.json:
        print(json.dumps(results, indent=2, default=str))


if __name__ == '__main__':
    main()
