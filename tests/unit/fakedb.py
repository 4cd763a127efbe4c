"""An in-memory stand-in for PyMySQL connections to the nova/neutron DBs.

It understands exactly the statements ``osc_nodeops.db`` sends (matched by
shape, with the values taken from the *parameters*, never from the SQL
text) and keeps per-connection transactions: changes are applied to a
private copy and published on ``commit``.  Every statement is recorded so
tests can check that no user-supplied value was ever put into SQL text.
"""

import copy
import re


class Server(object):
    """One database server holding named schemas of rows."""

    def __init__(self):
        self.data = {
            'instances': [],      # dict uuid host node compute_id deleted..
            'compute_nodes': [],  # dict id host hypervisor_hostname deleted
            'ports': [],          # dict id device_id
            'bindings': [],       # dict port_id host
            'levels': [],         # dict port_id host level
            'volume_attachment': [],
            'volumes': [],
        }
        self.statements = []
        self.has_compute_id = True
        self.fail_commit = 0
        # a driver error text raised by the next UPDATE (then cleared)
        self.fail_update = None
        # what SELECT @@hostname, @@port, @@server_id answers
        self.identity = ('db-%x' % id(self), 3306, 1)
        self.connections = []

    def connect(self, url=None):
        conn = Conn(self)
        self.connections.append(conn)
        return conn


class OperationalError(Exception):
    pass


class Cursor(object):
    def __init__(self, conn):
        self.conn = conn
        self.rowcount = 0
        self._rows = ()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def fetchall(self):
        return self._rows

    def execute(self, sql, params=()):
        self.conn._check()
        server = self.conn.server
        if server.fail_update and sql.lstrip().upper().startswith('UPDATE'):
            text, server.fail_update = server.fail_update, None
            raise OperationalError(1045, text)
        self.conn.server.statements.append((sql, tuple(params)))
        self.rowcount, self._rows = self.conn._run(sql, list(params))


def _strip(sql):
    return ' '.join(sql.split())


class Conn(object):
    def __init__(self, server):
        self.server = server
        self.tx = None
        self.closed = False
        self.dropped = False
        self.commits = 0

    def _check(self):
        if self.dropped or self.closed:
            raise OperationalError(2013, 'Lost connection to MySQL server')

    def begin(self):
        self._check()
        self.tx = copy.deepcopy(self.server.data)

    def cursor(self):
        return Cursor(self)

    def commit(self):
        self._check()
        if self.server.fail_commit:
            self.server.fail_commit -= 1
            self.tx = None
            raise OperationalError(2013, 'Lost connection during commit')
        if self.tx is not None:
            self.server.data = self.tx
        self.tx = None
        self.commits += 1

    def rollback(self):
        self._check()
        self.tx = None

    def ping(self, reconnect=False):
        self._check()

    def close(self):
        self.closed = True

    def drop(self):
        """The server went away: uncommitted work is lost."""
        self.dropped = True
        self.tx = None

    # -- the statements osc_nodeops.db uses
    def _d(self):
        return self.tx if self.tx is not None else self.server.data

    def _run(self, sql, p):
        s = _strip(sql)
        d = self._d()
        if s.startswith('SELECT COUNT(*) FROM information_schema.columns'):
            return 1, [(1 if self.server.has_compute_id else 0,)]
        if re.match(r'SELECT uuid, host, node, (compute_id|NULL), vm_state',
                    s):
            host = p[0]
            rows = sorted((r for r in d['instances'] if r['host'] == host
                           and r['deleted'] == 0), key=lambda r: r['uuid'])
            return len(rows), [
                (r['uuid'], r['host'], r['node'],
                 r['compute_id'] if 'compute_id' in s else None,
                 r.get('vm_state'), r.get('power_state'), r.get('name'))
                for r in rows]
        if re.match(r'SELECT uuid, host, node, (compute_id|NULL) FROM', s):
            uuids = set(p)
            rows = [r for r in d['instances'] if r['uuid'] in uuids]
            return len(rows), [(r['uuid'], r['host'], r['node'],
                                r['compute_id'] if 'compute_id' in s
                                else None) for r in rows]
        if s.startswith('SELECT id, hypervisor_hostname FROM'):
            rows = [(r['id'], r['hypervisor_hostname'])
                    for r in d['compute_nodes']
                    if r['host'] == p[0] and r['deleted'] == 0]
            return len(rows), rows
        if s.startswith('SELECT b.port_id, p.device_id'):
            host, devices = p[0], set(p[1:])
            ports = {x['id']: x for x in d['ports']}
            rows = sorted((b['port_id'], ports[b['port_id']]['device_id'])
                          for b in d['bindings'] if b['host'] == host
                          and b['port_id'] in ports
                          and ports[b['port_id']]['device_id'] in devices)
            return len(rows), rows
        if re.match(r'SELECT port_id, level FROM \S+ml2_port_binding_levels',
                    s):
            host, ports = p[0], set(p[1:])
            rows = sorted((r['port_id'], r['level']) for r in d['levels']
                          if r['host'] == host and r['port_id'] in ports)
            return len(rows), rows
        if re.match(r'SELECT port_id FROM \S+ml2_port_bindings', s):
            host, ports = p[0], set(p[1:])
            rows = [(r['port_id'],) for r in d['bindings']
                    if r['host'] == host and r['port_id'] in ports]
            return len(rows), rows
        if re.match(r'SELECT port_id, host, NULL FROM', s):
            ports = set(p)
            rows = [(r['port_id'], r['host'], None) for r in d['bindings']
                    if r['port_id'] in ports]
            return len(rows), rows
        if re.match(r'SELECT port_id, host, level FROM', s):
            ports = set(p)
            rows = [(r['port_id'], r['host'], r['level'])
                    for r in d['levels'] if r['port_id'] in ports]
            return len(rows), rows
        m = re.match(r'UPDATE \S+`instances` SET host = %s, node = %s'
                     r'(, compute_id = %s)? WHERE (.*)$', s)
        if m:
            with_cid = bool(m.group(1))
            n = 3 if with_cid else 2
            values, rest = p[:n], p[n:]
            where = m.group(2)
            if where.startswith('host = %s AND deleted = 0 AND uuid IN'):
                old, uuids = rest[0], set(rest[1:])
                rows = [r for r in d['instances'] if r['host'] == old
                        and r['deleted'] == 0 and r['uuid'] in uuids]
            else:  # uuid = %s AND host = %s
                rows = [r for r in d['instances'] if r['uuid'] == rest[0]
                        and r['host'] == rest[1]]
            for r in rows:
                r['host'], r['node'] = values[0], values[1]
                if with_cid:
                    r['compute_id'] = values[2]
            return len(rows), ()
        m = re.match(r'UPDATE \S+`(ml2_port_bindings|ml2_port_binding_levels)'
                     r'` SET host = %s WHERE (.*)$', s)
        if m:
            table = 'bindings' if m.group(1) == 'ml2_port_bindings' \
                else 'levels'
            where = m.group(2)
            if where.startswith('host = %s AND port_id IN'):
                new, old, ports = p[0], p[1], set(p[2:])
                rows = [r for r in d[table] if r['host'] == old
                        and r['port_id'] in ports]
            elif 'level' in where:
                new, port, old, level = p
                rows = [r for r in d[table] if r['port_id'] == port
                        and r['host'] == old and r['level'] == level]
            else:
                new, port, old = p
                rows = [r for r in d[table] if r['port_id'] == port
                        and r['host'] == old]
            for r in rows:
                key = (r['port_id'], new, r.get('level'))
                if any((x['port_id'], x['host'], x.get('level')) == key
                       for x in d[table]):
                    raise OperationalError(1062, 'Duplicate entry')
                r['host'] = new
            return len(rows), ()
        if s.startswith('SELECT @@hostname, @@port, @@server_id'):
            return 1, [self.server.identity]
        if s.startswith('SELECT i.uuid, i.display_name, a.volume_id'):
            host = p[0]
            return self._volumes(d, [r for r in d['instances']
                                     if r['host'] == host
                                     and r['deleted'] == 0])
        if s.startswith('SELECT uuid, display_name FROM'):
            rows = sorted((r['uuid'], r.get('name')) for r in d['instances']
                          if r['host'] == p[0] and r['deleted'] == 0)
            return len(rows), rows
        if s.startswith('SELECT a.instance_uuid, a.volume_id'):
            return self._volumes(d, [{'uuid': u} for u in set(p)],
                                 names=False)
        raise AssertionError('fakedb does not know: %s' % s)

    @staticmethod
    def _volumes(d, instances, names=True):
        vols = {v['id']: v for v in d['volumes'] if not v['deleted']}
        rows = []
        for i in sorted(instances, key=lambda r: r['uuid']):
            for a in sorted(d['volume_attachment'],
                            key=lambda a: a['mountpoint'] or ''):
                if a['instance_uuid'] != i['uuid'] or a['deleted']:
                    continue
                v = vols.get(a['volume_id'])
                if v is None:
                    continue
                row = (a['volume_id'], a['mountpoint'], v['status'],
                       a['attach_status'], v['display_name'],
                       a['attached_host'])
                if names:
                    rows.append((i['uuid'], i.get('name')) + row)
                else:
                    rows.append((i['uuid'],) + row)
        return len(rows), rows
