#!/usr/bin/env python3
"""Benchmark: the drain's dry run (the plan and its pre-flight) at scale.

Not a test.  Boots servers spread over the rig's compute hosts (default 200
of the tiny flavor, round-robin; the fake driver boots them fast), then
times ``openstack compute node drain HOST... --dry-run -f json`` for each
``--plans`` entry (default: one host, then two hosts at once) and counts
the API requests the process made, from the services' access logs:

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
REQUEST = re.compile(r'"(GET|POST|PUT|DELETE|PATCH|HEAD) ([^ ?"]+)(\?[^ "]*)?')
UUID = r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
LISTS = (
    r'^/v2\.1/servers/detail$', r'^/v2\.1/servers$',
    r'^/v2\.1/os-migrations$', r'^/v2\.1/os-services$',
    r'^/v2\.1/os-hypervisors(/detail)?$', r'^/v2\.1/os-aggregates$',
    r'^/v2\.1/os-server-groups$', r'^/v2\.1/flavors(/detail)?$',
    r'^/v2\.0/ports(\.json)?$', r'^/resource_providers$',
)
PER_HOST = (r'^/resource_providers/%s/(inventories|usages|allocations)$'
            % UUID,)
PER_SERVER = (
    r'^/v2\.1/servers/%s$' % UUID, r'^/v2\.1/flavors/[^/]+$',
    r'^/v2\.1/os-server-groups/%s$' % UUID, r'^/v2\.0/ports/%s$' % UUID,
    r'^/allocations/%s$' % UUID, r'^/v2\.1/servers/%s/' % UUID,
)

log = house.log


class Stop(BaseException):
    """SIGTERM: leave through the cleanup."""


def on_sigterm(signum, frame):
    raise Stop()


def classify(lines):
    out = {'lists': 0, 'per_host': 0, 'per_server': 0, 'other': 0,
           'total': 0, 'paths': {}}
    for line in lines:
        m = REQUEST.search(line)
        if not m:
            continue
        method, path = m.group(1), m.group(2)
        out['total'] += 1
        kind = 'other'
        if method == 'GET':
            if any(re.match(p, path) for p in LISTS):
                kind = 'lists'
            elif any(re.match(p, path) for p in PER_HOST):
                kind = 'per_host'
            elif any(re.match(p, path) for p in PER_SERVER):
                kind = 'per_server'
        out[kind] += 1
        key = '%s %s' % (method, re.sub(UUID, '<id>', path))
        out['paths'][key] = out['paths'].get(key, 0) + 1
    return out


def requests_during(fn):
    windows = [house.LogWindow(name) for name in LOGS]
    for w in windows:
        w.start()
    t0 = time.monotonic()
    extra = fn()
    wall = time.monotonic() - t0
    time.sleep(0.5)  # the servers write their log lines after answering
    lines = []
    for w in windows:
        lines.extend(w.lines())
    result = classify(lines)
    result['wall'] = wall
    result.update(extra or {})
    return result


def dry_run(hosts):
    def run():
        res = subprocess.run(
            [OPENSTACK, '--os-cloud', 'minicloud', 'compute', 'node',
             'drain'] + list(hosts) + ['--dry-run', '-f', 'json'],
            capture_output=True, text=True, env=house.cli_env())
        if res.returncode not in (0, 1):
            raise RuntimeError('dry run exited %d: %s' % (
                res.returncode, res.stderr[-2000:]))
        rows = json.loads(res.stdout)
        return {'rows': len(rows), 'exit': res.returncode,
                'planned': sum(1 for r in rows if r['Result'] == 'planned'),
                'fits': sum(1 for r in rows if r['Fits'] is True)}
    return run


def loop(conn, hosts):
    """Per-server reads of the same facts (for scale)."""
    def run():
        c = house.connect()
        n = 0
        for host in hosts:
            for s in list(c.compute.servers(all_projects=True,
                                            compute_host=host)):
                c.compute.get_server(s.id)
                list(c.network.ports(device_id=s.id))
                c.placement.get('/allocations/%s' % s.id)
                n += 1
        c.close()
        return {'rows': n, 'exit': 0, 'planned': n, 'fits': None}
    return run


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
        if not count:
            continue
        srv = conn.compute.create_server(
            name='bench-plan-%s' % host, flavor_id=state['flavor']['id'],
            image_id=state['image']['id'], networks='none',
            availability_zone='nova:%s' % host, min_count=count,
            max_count=count)
        rid = getattr(srv, 'reservation_id', None)
        log('booting %d on %s (reservation %s)' % (count, host, rid))
    deadline = time.time() + 900
    while True:
        mine = [s for s in conn.compute.servers(all_projects=True)
                if (s.name or '').startswith('bench-plan-')]
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
    ids = set(created)
    while ids and time.time() < deadline:
        left = [s for s in conn.compute.servers(all_projects=True)
                if s.id in ids]
        if not left:
            return
        time.sleep(2)
    log('servers still there after 600 s: %s' % sorted(ids))


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


def report(results):
    print('dry run of `compute node drain HOSTS --dry-run`: wall time and '
          'API requests')
    print('%-7s %-10s %7s %6s %7s %6s %9s %8s %6s %6s' % (
        'servers', 'plan', 'wall s', 'rows', 'total', 'lists',
        'per host', 'per srv', 'other', 'exit'))
    for r in results:
        print('%-7d %-10s %7.2f %6d %7d %6d %9d %8d %6d %6d' % (
            r['servers'], r['plan'], r['wall'], r['rows'], r['total'],
            r['lists'], r['per_host'], r['per_server'], r['other'],
            r['exit']))
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
                r = requests_during(dry_run(plan_hosts))
                r.update(servers=size, plan=plan)
                results.append(r)
                log('%s: %.2f s, %d requests' % (plan, r['wall'],
                                                 r['total']))
                if not args.no_loop and plan == args.plans[0]:
                    r = requests_during(loop(conn, plan_hosts))
                    r.update(servers=size, plan='loop ' + plan)
                    results.append(r)
    except (KeyboardInterrupt, Stop):
        log('stopped: cleaning up')
        raise SystemExit(130)
    finally:
        try:
            cleanup(conn, created)
            house.enable(conn, hosts)
            if quota is not None:
                conn.compute.update_quota_set(project, **quota)
                log('quota restored: %s' % quota)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    report(results)
    if args.paths:
        for r in results:
            print('\n%s, %d servers' % (r['plan'], r['servers']))
            for path, n in sorted(r['paths'].items()):
                print('  %4d %s' % (n, path))
    if args.json:
        print(json.dumps(results, indent=2, default=str))


if __name__ == '__main__':
    main()
