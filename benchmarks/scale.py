#!/usr/bin/env python3
"""Benchmark: the engine's polls and the drain's planning on a big cloud.

Not a test, and no rig: a scale model on the project's SDK fakes
(``tests/unit/fakes.FakeNova``, ``FakeCloud``), well under a minute.  The
fake cloud: ``--hosts`` compute hosts (default 1,000), ``--per-host``
servers on each (default 20: 20,000 servers), ``--history`` finished
migration records older than an hour (default 2,000) and ``--others``
live migrations of someone else running elsewhere (default 10).

nova's answers are modelled here, over the fake (``Api``): a listing
honours ``changes-since`` (a record or a server is in it when it changed
since: created, a new status, a new host or task state; a running live
migration counts as changed at every poll, as nova saves its progress)
and ``host`` / ``compute_host``; a listing of ``n`` items is
``n // 1000 + 1`` pages (nova's ``max_limit``).  The fake's own
``migrations()`` would build every record at each call and tick every
migration one step; here the benchmark ticks the cloud once per poll
interval (``--interval``, default 2 s on a fake clock) and the
listings build only what they answer.

Measured, in client CPU (``time.process_time``) without the fake's own
work (choosing what a listing answers, the placement fake's answers; the
SDK resources of an answer are built as the client would and count, JSON
decoding is not modelled):

planning   one host's drain plan: ``HostPoller.snapshot(full=True)``
           (its migration records, its servers) and ``plan.plan_drain``;
           then its pre-flight (``run.run_preflight``: ``gather`` -- the
           services, ports, server groups, aggregates, hypervisors and two
           placement GETs per candidate host -- and ``preflight.apply``).
           Then the wave's ``--wave`` hosts (default 10) as the drain's
           capacity pre-pass plans them (one shared pool).
polls      waves of 1, 2, 5, 10, 20 hosts, each host keeping
           ``--inflight`` live migrations (default 2) running to hosts
           outside the wave (each takes about eight polls); per poll every
           host's snapshot is taken and its servers read, and the slots
           counted over its migrations (``Slots.busy``), as the executors
           do.  ``wave``: one ``wave.WavePoll`` for the wave (a migration
           list of the cloud and a server list, both ``changes-since``);
           ``per-host``: each host its own ``engine.HostPoller`` (its
           migrations since the run began and its servers: two requests a
           host).  The first poll (the wave lists each host in full) is
           shown apart; then ``--polls`` polls (default 15) are averaged.
           ``views ok``: at the last poll every host's view holds exactly
           the servers the fake has on it.

Goal (issue 24): the requests of a poll do not grow with the hosts of a
wave; computed from the figures (PASS when they stay within 0.05).

The poll interval: the figures show what a poll costs the client (a few
milliseconds for a wave of 20, against an interval of seconds), so the
interval is bounded by the API's latency, not by the client: keep it at
least k (4) times the running median wall time of a poll's two listings
and never under ``--poll-interval``; when a poll's listings take more than
a quarter of the interval, double it (up to 30 s) and come back down once
they take under a tenth.  With ``changes-since`` both listings carry only
what changed in the interval and the 60 s margin, a few dozen rows here
whatever the size of the cloud, so on a big cloud their latency stays near
one round trip; what grows with the cloud is the planning (its pre-flight
reads placement for every candidate host) and the wave's first poll (one
full listing per host).

    .venv/bin/python benchmarks/scale.py [--hosts 1000] [--per-host 20]
"""

import argparse
import datetime
import os
import sys
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from openstack.compute.v2 import migration as _migration  # noqa: E402
from openstack.compute.v2 import server as _server  # noqa: E402

from osc_nodeops import timeutil  # noqa: E402
from osc_nodeops.ops import drain  # noqa: E402
from osc_nodeops.ops import engine  # noqa: E402
from osc_nodeops.ops.cloud import nova as cloud_nova  # noqa: E402
from osc_nodeops.ops.drain import plan  # noqa: E402
from osc_nodeops.ops.drain import gather as drain_gather  # noqa: E402
from osc_nodeops.ops.drain import run as drain_run  # noqa: E402
from osc_nodeops.ops.engine import slots  # noqa: E402
from osc_nodeops.ops.engine import wave  # noqa: E402
from tests.unit import fakes  # noqa: E402
from tests.unit.test_engine import FakeClock  # noqa: E402
from tests.unit.test_preflight import flavor  # noqa: E402

MAX_LIMIT = 1000   # nova's [api]max_limit
WAVES = (1, 2, 5, 10, 20)
BASE = datetime.datetime(2026, 12, 4, 12, 0, 0, tzinfo=timeutil.UTC)
OLD = BASE - datetime.timedelta(days=1)
FINAL = cloud_nova.MIGRATION_FINAL
MOVE_POLLS = 5     # polls a move copies after queued/preparing/running


def cpu():
    return time.process_time()


class Row(object):
    """A server or a migration record as the fake cloud keeps it (nova's
    database): plain attributes, ``to_dict`` its API body.  20,000 SDK
    ``Server`` objects (what ``FakeNova.add`` stores) would take a minute to
    build; the answers are SDK resources built from these bodies."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)

    def to_dict(self, computed=False):
        return {k: v for k, v in self.__dict__.items()
                if not k.startswith('_')}


class Api(object):
    """nova's listings over the fake: ``changes-since`` and host filters
    honoured, every listing counted (requests, pages, rows), the fake's
    own CPU kept apart (``fake_cpu``)."""

    def __init__(self, nova, clock):
        self.nova = nova
        self.clock = clock
        self.start = clock()
        self.m_at: dict = {}     # migration id -> when it last changed
        self.s_at: dict = {}     # server id -> when it last changed
        self.watch: dict = {}    # migration id -> its look at the last tick
        self.fake_cpu = 0.0
        self.lists = self.pages = self.rows = 0
        self.rows_of = {_migration.Migration: 0, _server.Server: 0}
        nova.compute.migrations.side_effect = self.migrations
        nova.compute.servers.side_effect = self.servers
        add = nova.add_migration

        def added(server_id, **kw):   # every record made from now on
            m = add(server_id, **kw)
            self.m_at[m.id] = self.s_at[server_id] = self.now()
            self.watch[m.id] = None
            return m
        nova.add_migration = added

    def now(self):
        return BASE + datetime.timedelta(seconds=self.clock() - self.start)

    def tick(self):
        """One poll interval of the cloud: every move one step on."""
        t = cpu()
        self.nova.tick()
        now = self.now()
        for mid, seen in list(self.watch.items()):
            m = self.nova.migrations[mid]
            srv = self.nova.servers[m.server_id]
            look = (m.status, srv.compute_host, srv.task_state, srv.status)
            if look != seen or m.status == 'running':
                self.m_at[mid] = now
                if seen is None or look[1:] != seen[1:]:
                    self.s_at[srv.id] = now
                self.watch[mid] = look
            if m.status in FINAL and getattr(m, '_outcome', None) is None:
                del self.watch[mid]
        self.fake_cpu += cpu() - t

    def _answer(self, found, cls, t):
        """The SDK resources of an answer: the bodies are the fake's work
        (nova's JSON), the resources the client's."""
        bodies = [r.to_dict(computed=False) for r in found]
        self.fake_cpu += cpu() - t
        self.lists += 1
        self.pages += len(found) // MAX_LIMIT + 1
        self.rows += len(found)
        self.rows_of[cls] += len(found)
        return iter([cls(**body) for body in bodies])

    def migrations(self, host=None, changes_since=None, **kw):
        t = cpu()
        since = timeutil.parse_time(changes_since)
        if since is not None:
            pool = sorted((self.nova.migrations[i] for i, at in
                           self.m_at.items() if at >= since),
                          key=lambda m: m.id)
        else:
            pool = list(self.nova.migrations.values())
        found = [m for m in pool if host is None
                 or host in (m.source_compute, m.dest_compute)]
        return self._answer(found, _migration.Migration, t)

    def servers(self, details=True, all_projects=False, compute_host=None,
                changes_since=None, **kw):
        assert 'host' not in kw, 'compute_host= lists by host'
        t = cpu()
        since = timeutil.parse_time(changes_since)
        if since is not None:
            pool = [self.nova.servers[i] for i, at in self.s_at.items()
                    if at >= since]
        else:
            pool = self.nova.servers.values()
        found = [s for s in pool if compute_host is None
                 or s.compute_host == compute_host]
        return self._answer(found, _server.Server, t)


def build(args):
    names = ['c%04d' % (i + 1) for i in range(args.hosts)]
    nova = fakes.FakeNova(hosts=names)
    size = flavor(vcpus=2, ram=4096, disk=20)
    on = {h: [] for h in names}
    for i in range(args.hosts * args.per_host):
        host = names[i % args.hosts]
        srv = Row(id=str(uuid.uuid4()), name='srv-%05d' % i,
                  status='ACTIVE', project_id='p1', compute_host=host,
                  task_state=None, power_state=1, metadata={},
                  image={'id': 'img'}, flavor=dict(size))
        nova.servers[srv.id] = srv
        on[host].append(srv.id)
    made = list(nova.servers)
    for i in range(args.history):   # finished, long ago
        m = Row(id=next(nova._ids), server_id=made[i % len(made)],
                status='completed', migration_type='live-migration',
                source_compute=names[i % args.hosts],
                dest_compute=names[(i + 1) % args.hosts])
        nova.migrations[m.id] = m
    clock = FakeClock()
    api = Api(nova, clock)
    for i in range(args.others):    # someone else's, never ending here
        src, dest = names[args.hosts // 2 + i], names[args.hosts // 2 - i]
        m = nova.add_migration(on[src][0], status='running', source=src,
                               dest=dest, migration_type='live-migration')
        nova.servers[m.server_id].task_state = 'migrating'
    # The polls begin past any changes-since window of the building.
    api.tick()
    clock.wait(3 * 3600.0)
    held = {'VCPU': 2 * args.per_host, 'MEMORY_MB': 4096 * args.per_host,
            'DISK_GB': 20 * args.per_host}
    cloud = fakes.FakeCloud(nova, size={'VCPU': 128, 'MEMORY_MB': 524288,
                                        'DISK_GB': 4000},
                            used={h: dict(held) for h in names})
    faked = cloud._get

    def placement_get(url, **kw):
        t = cpu()
        try:
            return faked(url, **kw)
        finally:
            api.fake_cpu += cpu() - t
    cloud.placement_get = placement_get
    return nova, cloud, api, names, on


class Meter(object):
    """Client CPU and requests between ``start()`` and ``stop()``."""

    def __init__(self, api, cloud):
        self.api, self.cloud = api, cloud

    def start(self):
        self.t = cpu()
        self.fake = self.api.fake_cpu
        self.nova = len(self.api.nova.compute.method_calls) + len(
            self.cloud.network.method_calls)
        self.gets = len(self.cloud.gets)
        return self

    def stop(self):
        all_ms = (cpu() - self.t) * 1000
        fake_ms = (self.api.fake_cpu - self.fake) * 1000
        return {'all': all_ms, 'client': all_ms - fake_ms,
                'nova': len(self.api.nova.compute.method_calls) + len(
                    self.cloud.network.method_calls) - self.nova,
                'gets': len(self.cloud.gets) - self.gets}


def planning(nova, cloud, api, hosts, features):
    """[(what, figures)]: the plan and the pre-flight of ``hosts[0]``
    alone, then of every host of ``hosts`` (the capacity pre-pass)."""
    compute = nova.compute
    meter = Meter(api, cloud)
    out = []
    for group in ((hosts[0],), tuple(hosts)):
        opts = drain.Options(hosts=group, dry_run=True)
        pool = drain_gather.Pool() if len(group) > 1 else None
        planned = {'all': 0.0, 'client': 0.0, 'nova': 0, 'gets': 0}
        checked = dict(planned)
        moves = 0
        for host in group:
            ctx = drain_run._context(compute, host, features, opts, None,
                                     None)
            ctx.preflight = (cloud, group)
            meter.start()
            snap = engine.HostPoller(compute, host, features).snapshot(
                full=True)
            items = plan.plan_drain(ctx, snap, opts)
            for k, v in meter.stop().items():
                planned[k] += v
            meter.start()
            drain_run.run_preflight(ctx, host, items, opts, features,
                                    pool=pool)
            for k, v in meter.stop().items():
                checked[k] += v
            moves += sum(1 for i in items if i.action is not None
                         and i.fits is not False)
        label = ('1 host' if len(group) == 1 else
                 'wave of %d (pre-pass)' % len(group))
        total = {k: planned[k] + checked[k] for k in planned}
        out += [(label + ': snapshot + plan', planned),
                (label + ': pre-flight', checked),
                (label + ': total (%d moves fit)' % moves, total)]
    return out


def polls(nova, api, hosts, on, dests, way, features, args):
    """Figures of ``args.polls`` polls of the wave ``hosts`` after its
    first, ``way`` ``wave`` or ``per-host``."""
    compute = nova.compute
    clock = api.clock
    if way == 'wave':
        shared = wave.WavePoll(compute, hosts, features, args.interval,
                               clock=clock, now=api.now)

        def look(h):
            return shared.view(h)

        def counted():
            return shared.calls
    else:
        since = api.now() - datetime.timedelta(hours=1)
        own = {h: engine.HostPoller(compute, h, features, since=since)
               for h in hosts}

        def look(h):
            return own[h].snapshot()

        def counted():
            return sum(p.calls for p in own.values())
    pool = slots.Slots(per_source=args.inflight, per_dest=args.inflight)
    todo = {h: list(on[h]) for h in hosts}
    moving = {h: [] for h in hosts}
    started = []
    turn = [0]

    def keep_moving():   # the executors' moves (not measured)
        for h in hosts:
            moving[h] = [mid for mid in moving[h]
                         if nova.migrations[mid].status not in FINAL]
            while len(moving[h]) < args.inflight and todo[h]:
                sid = todo[h].pop()
                nova.scripts[sid] = ['slow:%d' % MOVE_POLLS]
                turn[0] += 1
                compute.live_migrate_server(
                    sid, host=dests[turn[0] % len(dests)])
                mid = next(reversed(nova.migrations))
                moving[h].append(mid)
                started.append(mid)

    keep_moving()
    rows = []
    for n in range(args.polls + 1):
        clock.wait(args.interval)
        api.tick()
        calls0, pages0 = counted(), api.pages
        rows0 = dict(api.rows_of)
        t0, fake0 = cpu(), api.fake_cpu
        views = {}
        for h in hosts:
            snap = look(h)
            snap.servers
            pool.busy(snap.all_migrations)
            views[h] = snap
        rows.append({'cpu': (cpu() - t0 - (api.fake_cpu - fake0)) * 1000,
                     'calls': counted() - calls0,
                     'pages': api.pages - pages0,
                     'mrows': (api.rows_of[_migration.Migration]
                               - rows0[_migration.Migration]),
                     'srows': (api.rows_of[_server.Server]
                               - rows0[_server.Server])})
        keep_moving()
    wrong = sum(1 for h in hosts if set(views[h].servers) != {
        s.id for s in nova.on(h)})
    # Let the moves end; age everything past any changes-since window.
    for mid in started:
        m = nova.migrations[mid]
        if getattr(m, '_outcome', None):
            m._outcome, m._step = 'ok', 99
    api.tick()
    clock.wait(3 * 3600.0)
    first, rest = rows[0], rows[1:]
    done = sum(1 for mid in started
               if nova.migrations[mid].status == 'completed')

    def mean(key):
        return sum(r[key] for r in rest) / len(rest)
    return {'first': first['calls'], 'req': mean('calls'),
            'pages': mean('pages'), 'mrows': mean('mrows'),
            'srows': mean('srows'), 'rows': mean('mrows') + mean('srows'),
            'cpu': mean('cpu'), 'wrong': wrong, 'moves': done}


def wrapped(text, width=79):
    words, lines, line = text.split(), [], ''
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = (line + ' ' + word).strip()
    return '\n'.join(lines + [line])


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--hosts', type=int, default=1000)
    p.add_argument('--per-host', type=int, default=20)
    p.add_argument('--history', type=int, default=2000)
    p.add_argument('--others', type=int, default=10)
    p.add_argument('--wave', type=int, default=10)
    p.add_argument('--polls', type=int, default=15)
    p.add_argument('--inflight', type=int, default=2)
    p.add_argument('--interval', type=float, default=2.0)
    args = p.parse_args()
    # Each wave (twice: both ways) on hosts of its own, c0101 on; the
    # last 100 hosts are where the moves go.
    waves = [w for i, w in enumerate(WAVES)
             if 200 + 2 * sum(WAVES[:i + 1]) <= args.hosts]
    wall = time.time()
    t = cpu()
    nova, cloud, api, names, on = build(args)
    built = cpu() - t
    features = cloud_nova.Features.from_proxy(nova.compute)
    print('%d hosts, %d servers, %d migration records (%d running '
          'elsewhere); poll interval %gs; nova pages listings by %d; built '
          'in %.1f s' % (args.hosts, len(nova.servers), len(nova.migrations),
                         args.others, args.interval, MAX_LIMIT, built))

    print()
    print('Planning (dry run of the drain; client CPU, the fake\'s own work '
          'left out)')
    print('%-42s %8s %10s %11s %9s' % ('what', 'nova req', 'placement',
                                       'client ms', 'all ms'))
    for what, f in planning(nova, cloud, api, names[:args.wave], features):
        print('%-42s %8d %10d %11.1f %9.1f' % (what, f['nova'], f['gets'],
                                               f['client'], f['all']))

    print()
    print('Polls (per poll interval, every host of the wave viewed, its '
          'servers read, its slots counted; mean of %d polls after the '
          'first)' % args.polls)
    print('(first: requests of the first poll; req, pages: per poll; rows: '
          'migration records + servers a poll\'s answers carry; cpu: client '
          'ms per poll)')
    print('%5s | %-38s | %-38s | %s' % (
        '', 'wave.WavePoll (one poll, the wave)',
        'HostPoller each host', 'per-host / wave'))
    print('%5s | %5s %5s %5s %11s %7s | %5s %5s %5s %11s %7s | %5s %5s' % (
        'hosts', 'first', 'req', 'pages', 'rows', 'cpu',
        'first', 'req', 'pages', 'rows', 'cpu', 'req', 'cpu'))
    dests = names[-100:]

    def rows(f):
        return '%.0f+%.0f' % (f['mrows'], f['srows'])
    nxt = 100
    figures = {}
    wrong = moves = 0
    for w in waves:
        got = {}
        for way in ('wave', 'per-host'):
            hosts = names[nxt:nxt + w]
            nxt += w
            got[way] = polls(nova, api, hosts, on, dests, way, features, args)
            wrong += got[way]['wrong']
            moves += got[way]['moves']
        figures[w] = got
        a, b = got['wave'], got['per-host']
        print('%5d | %5d %5.2f %5.2f %11s %7.1f | %5d %5.2f %5.2f %11s '
              '%7.1f | %5.1f %5.1f' % (
                  w, a['first'], a['req'], a['pages'], rows(a), a['cpu'],
                  b['first'], b['req'], b['pages'], rows(b), b['cpu'],
                  b['req'] / a['req'], b['cpu'] / a['cpu']))
    print('views ok: %s (%d host views differ from the fake); %d moves '
          'completed during the polls' % (
              'yes' if not wrong else 'NO', wrong, moves))

    per = [figures[w]['wave']['req'] for w in waves]
    grows = max(per) - min(per)
    print()
    print('goal: requests per poll do not grow with the hosts in a wave: '
          '%.2f..%.2f for waves of %s hosts (spread %.2f <= 0.05): %s' % (
              min(per), max(per), ', '.join(map(str, waves)), grows,
              'PASS' if grows <= 0.05 and not wrong else 'FAIL'))
    big = max(waves)
    one = figures[big]['wave']
    print('per-host polling of %d hosts: %.1f requests per poll (%.1fx the '
          'wave\'s)' % (big, figures[big]['per-host']['req'],
                        figures[big]['per-host']['req'] / one['req']))
    shown = args.wave if args.wave in figures else big
    w10 = figures[shown]['wave']
    print()
    print(wrapped(
        'poll interval: a poll of a %d-host wave (%d moves in flight) costs '
        'the client %.1f ms of CPU, %.1f%% of a %gs interval, in %.0f '
        'requests carrying %.0f rows (%.2f ms a row: the SDK builds each '
        'resource); requests stay at 2 however many hosts, the rows and the '
        'CPU grow with the moves in flight (each change is listed again for '
        'the %.0f s margin: rows ~ changes per interval x (1 + %.0f/%g)), '
        'never with the size of the cloud.  So the client does not bound '
        'the interval, the API\'s latency does: keep the interval >= 4 x '
        'the running median wall time of a poll\'s two listings (never '
        'under --poll-interval); when one poll\'s listings take more than '
        '1/4 of the interval, double it (up to 30 s), and step back down '
        'when they take under 1/10.  With changes-since both listings stay '
        'a page on a big cloud; the heavy reads are the planning\'s (two '
        'placement GETs per candidate host, once for the wave\'s pre-pass '
        'and once for its own plans, and the pre-flight\'s lists per host '
        'planned) and the '
        'wave\'s first poll (%d full host listings).' % (
            shown, shown * args.inflight, w10['cpu'],
            w10['cpu'] / (args.interval * 1000) * 100, args.interval,
            w10['req'], w10['rows'], w10['cpu'] / max(w10['rows'], 1),
            wave.MARGIN, wave.MARGIN, args.interval, w10['first'] - 1)))
    print('(%.0f s wall, %.0f s CPU in all)' % (time.time() - wall, cpu()))


if __name__ == '__main__':
    main()
