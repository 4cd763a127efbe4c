#!/usr/bin/env python3
"""Benchmark: the API requests of one ``compute node list``, before and after.

Not a test, and no rig: it runs in a second on the project's SDK fakes
(``tests/unit/fakes.FakeNova``: real openstacksdk resources behind a
spec'd compute proxy).  The fake cloud: ``--servers`` servers (default
1,000) spread over ``--hosts`` compute hosts (default 20), ``--history``
finished migration records (default 3,000: a few drains' worth; nova never
deletes them, ``nova-manage db archive_deleted_rows`` aside) and two live
migrations in flight from the first host to the second.

Each variant's proxy calls are counted and turned into HTTP requests as
nova answers them: a server or migration listing comes in pages of
``max_limit`` (1,000) items, and the SDK asks for the next page while a
page is full, so ``n`` items cost ``n // 1000 + 1`` requests; a service or
aggregate listing is one request.  Printed per variant: requests, the
servers and migration records the responses carry, and the ratios to the
code before issue 23 (``before``: its four listings, written out below
as that code made them, commit 97e8c43):

``before``               services, aggregates (the leases), every server
                         of every project with details, every migration
                         record of the cloud; on every call, ``--host`` or
                         not (it had none: ``| grep``);
``list``                 services and the leases aggregate;
``list --long``          plus one listing of every server, and the
                         migration records of the hosts where a server is
                         caught moving;
``list --host H --long`` the services of H, the leases, H's servers and
                         H's migration records.

    .venv/bin/python benchmarks/node_list.py [--servers 1000] [--hosts 20]
"""

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from osc_nodeops.ops import node_list  # noqa: E402
from tests.unit import fakes  # noqa: E402

MAX_LIMIT = 1000  # nova's [api]max_limit
PAGED = ('servers', 'migrations')
LISTS = ('services', 'aggregates', 'servers', 'migrations', 'hypervisors')


class Counter(object):
    """Wraps the fake proxy's list methods; counts requests and items."""

    def __init__(self, compute):
        self.requests = 0
        self.items = {'servers': 0, 'migrations': 0}
        for name in LISTS:
            method = getattr(compute, name)
            method.side_effect = self._wrap(name, method.side_effect)

    def _wrap(self, name, inner):
        def call(*args, **kwargs):
            found = list(inner(*args, **kwargs))
            if name in PAGED:
                self.requests += len(found) // MAX_LIMIT + 1
                self.items[name] += len(found)
            else:
                self.requests += 1
            return iter(found)
        return call

    def reset(self):
        self.requests = 0
        self.items = {'servers': 0, 'migrations': 0}


def build(servers, hosts, history):
    names = ['c%02d' % (i + 1) for i in range(hosts)]
    nova = fakes.FakeNova(hosts=names)
    made = [nova.add('srv-%04d' % i, host=names[i % hosts])
            for i in range(servers)]
    for i in range(history):
        nova.add_migration(made[i % servers].id, status='completed',
                           source=names[i % hosts],
                           dest=names[(i + 1) % hosts])
    for srv in made[:hosts * 2:hosts]:  # two servers of the first host
        srv.task_state = 'migrating'
        nova.add_migration(srv.id, status='running', source=names[0],
                           dest=names[1])
    return nova, names


def before(compute):
    """The calls of ``node_list.gather`` before issue 23 (97e8c43)."""
    from osc_nodeops.ops import lease
    services = node_list.compute_services(compute)
    list(compute.servers(details=True, all_projects=True))
    list(compute.migrations())
    lease.holders(compute, services)


def measure(counter, fn):
    counter.reset()
    fn()
    return counter.requests, dict(counter.items)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--servers', type=int, default=1000)
    parser.add_argument('--hosts', type=int, default=20)
    parser.add_argument('--history', type=int, default=3000)
    args = parser.parse_args()
    nova, names = build(args.servers, args.hosts, args.history)
    counter = Counter(nova.compute)
    c = nova.compute
    variants = (
        ('before', lambda: before(c)),
        ('list', lambda: node_list.rows(c, node_list.Request())),
        ('list --long', lambda: node_list.rows(
            c, node_list.Request(long=True))),
        ('list --host %s --long' % names[0], lambda: node_list.rows(
            c, node_list.Request(hosts=(names[0],), long=True))),
    )
    results = [(name,) + measure(counter, fn) for name, fn in variants]
    base_req, base_items = results[0][1], results[0][2]
    base_total = sum(base_items.values())
    print('%d servers on %d hosts, %d migration records (%d in flight); '
          'nova pages listings by %d' % (
              args.servers, args.hosts, len(nova.migrations), 2, MAX_LIMIT))
    print('%-26s %8s %8s %10s %12s %12s' % (
        'variant', 'requests', 'servers', 'migrations', 'req. ratio',
        'items ratio'))
    for name, req, items in results:
        total = sum(items.values())
        print('%-26s %8d %8d %10d %12s %12s' % (
            name, req, items['servers'], items['migrations'],
            '%.2f' % (req / base_req),
            '%.3f' % (total / base_total) if base_total else '-'))


if __name__ == '__main__':
    main()
