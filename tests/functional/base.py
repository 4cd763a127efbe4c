"""Base class of the functional tests: real services on the minicloud.

Every functional test class derives from :class:`FunctionalTestCase`.  The
first class of a test process brings the rig up
(``tools/minicloud/minicloud up``) when ``minicloud status`` says it is not
up; every class then holds an exclusive lock on
``<state>/functional.lock`` while it runs, so concurrent runs by several
developers on the shared rig serialise instead of trampling each other.

The state directory is ``<repo>/.minicloud`` unless ``MINICLOUD_DIR`` says
otherwise; ``<state>/minicloud.json`` describes the rig (see
``doc/source/minicloud.rst``) and is available as ``self.state``.
"""

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import testtools

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _claim_worker_rig():
    """With NODEOPS_FUNCTIONAL_RIGS (rig state directories, os.pathsep
    between them; ``tools/checks functional`` sets it), this test process
    takes the first rig no other process holds (a non-blocking flock on
    ``<rig>/worker.lock``, kept until the process ends), enters the rig's
    network namespace (named in ``<rig>/netns``; setns(2) on this, the only
    thread: every later thread and child process is inside too) and sets
    MINICLOUD_DIR, which ``minicloud`` and every child follow.  See
    doc/source/contributor/functional-tests.rst.  Returns the lock file,
    or None without the variable (one rig, as a developer runs it)."""
    rigs = os.environ.get('NODEOPS_FUNCTIONAL_RIGS')
    if not rigs:
        return None
    import ctypes
    if threading.active_count() != 1:
        raise RuntimeError('a worker enters its rig\'s namespace before any'
                           ' thread exists; %d threads run'
                           % threading.active_count())
    for rig in rigs.split(os.pathsep):
        lock = open(os.path.join(rig, 'worker.lock'), 'a')
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        with open(os.path.join(rig, 'netns')) as f:
            netns = f.read().strip()
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(os.path.join('/run/netns', netns), os.O_RDONLY)
        try:
            if libc.setns(fd, 0x40000000) != 0:     # CLONE_NEWNET
                err = ctypes.get_errno()
                raise OSError(err, 'setns(%s): %s' % (netns,
                                                      os.strerror(err)))
        finally:
            os.close(fd)
        os.environ['MINICLOUD_DIR'] = rig
        return lock
    raise RuntimeError('NODEOPS_FUNCTIONAL_RIGS: every rig is held by '
                       'another test process: %s' % rigs)


_worker_rig_lock = _claim_worker_rig()
MINICLOUD = os.path.join(REPO, 'tools', 'minicloud', 'minicloud')
STATE_DIR = os.environ.get('MINICLOUD_DIR') or os.path.join(
    REPO, '.minicloud')
CLOUDS_YAML = os.path.join(STATE_DIR, 'clouds.yaml')

FLAVOR = 'nodeops.tiny'
IMAGE = 'nodeops-image'

# ``minicloud up`` is attempted at most once per test process.
_rig_checked = False
_rig_lock = threading.Lock()


def _run_minicloud(*args, check=True, timeout=900):
    return subprocess.run(
        [MINICLOUD] + [str(a) for a in args], capture_output=True,
        text=True, check=check, timeout=timeout)


def ensure_rig():
    """Bring the minicloud up once per process if it is not up."""
    global _rig_checked
    with _rig_lock:
        if _rig_checked:
            return
        status = _run_minicloud('status', check=False, timeout=120)
        if status.returncode != 0:
            up = _run_minicloud('up', check=False, timeout=1200)
            if up.returncode != 0:
                raise RuntimeError(
                    'minicloud up failed (exit %d):\n%s\n%s' % (
                        up.returncode, up.stdout[-3000:],
                        up.stderr[-3000:]))
        _rig_checked = True


def connect(cloud):
    """An openstacksdk Connection for a cloud of the rig's clouds.yaml."""
    import openstack.config
    import openstack.connection
    config = openstack.config.OpenStackConfig(config_files=[CLOUDS_YAML])
    return openstack.connection.Connection(
        config=config.get_one(cloud=cloud))


class FunctionalTestCase(testtools.TestCase):
    """Real services on the minicloud; see the module docstring."""

    admin_conn = None
    demo_conn = None
    state = None
    _lock_file = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Lock first, then check the rig: whoever holds the lock (another
        # test class, or the rig's owner restarting it) is never disturbed
        # by a concurrent `minicloud up`.
        os.makedirs(STATE_DIR, exist_ok=True)
        lock = open(os.path.join(STATE_DIR, 'functional.lock'), 'a+')
        fcntl.flock(lock, fcntl.LOCK_EX)
        cls._lock_file = lock
        try:
            ensure_rig()
            with open(os.path.join(STATE_DIR, 'minicloud.json')) as f:
                cls.state = json.load(f)
            cls.admin_conn = connect('minicloud')
            cls.demo_conn = connect('minicloud-demo')
            # The admin user holds the admin role in project demo too:
            # the only way to pin a demo-owned server to a host.
            cls._demo_admin_conn = connect('minicloud-demo-admin')
            cls._drop_orphan_allocations()
        except BaseException:
            cls._release_lock()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for conn in (cls.admin_conn, cls.demo_conn,
                         getattr(cls, '_demo_admin_conn', None)):
                if conn is not None:
                    conn.close()
        finally:
            cls._release_lock()
            super().tearDownClass()

    # Migration statuses that are over (nova/objects/migration.py).
    _MIGRATION_OVER = ('completed', 'confirmed', 'done', 'failed', 'error',
                       'cancelled', 'reverted')

    @classmethod
    def _drop_orphan_allocations(cls):
        """Rig hygiene, under the lock: allocations on the computes'
        providers whose consumer nova knows neither as a server nor as a
        migration that is not over (nova leaves them when a server is
        deleted mid-move; a killed test leaves its made-up consumers)
        would make every later drain's post-drain audit exit 1.  They are
        deleted, and said on stderr."""
        conn = cls.admin_conn
        try:
            moving = {m.uuid for m in conn.compute.migrations()
                      if getattr(m, 'uuid', None)
                      and m.status not in cls._MIGRATION_OVER}
            for hv in conn.compute.hypervisors(details=True):
                allocs = conn.placement.get(
                    '/resource_providers/%s/allocations' % hv.id).json()
                for consumer in allocs.get('allocations') or {}:
                    if consumer in moving or conn.compute.find_server(
                            consumer, ignore_missing=True,
                            all_projects=True) is not None:
                        continue
                    conn.placement.delete('/allocations/%s' % consumer,
                                          raise_exc=False)
                    sys.stderr.write('rig hygiene: deleted the orphan '
                                     'allocation of %s on %s\n' % (
                                         consumer, hv.name))
        except Exception as exc:  # hygiene only: the tests say the rest
            sys.stderr.write('rig hygiene skipped: %s\n' % exc)

    @classmethod
    def _release_lock(cls):
        if cls._lock_file is not None:
            fcntl.flock(cls._lock_file, fcntl.LOCK_UN)
            cls._lock_file.close()
            cls._lock_file = None

    # -- a bigger rig for one class ----------------------------------------

    @classmethod
    def rig_view(cls):
        """What the other classes rely on: compute services, resource
        providers, and the rig's aggregates with their hosts."""
        conn = connect('minicloud')
        try:
            return {
                'services': sorted(s.host for s in conn.compute.services(
                    binary='nova-compute')),
                'providers': sorted(r.name for r in
                                    conn.placement.resource_providers()),
                # (not the host leases' aggregate, made by the first run
                # that takes a lease: ops/lease.py)
                'aggregates': {a.name: sorted(a.hosts or [])
                               for a in conn.compute.aggregates()
                               if a.name != 'osc-nodeops-leases'},
                'agents': sorted(a.host for a in conn.network.agents()),
            }
        finally:
            conn.close()


    # -- helpers -----------------------------------------------------------

    def minicloud(self, *args):
        """Run tools/minicloud/minicloud ARGS; raise on a non-zero exit."""
        res = _run_minicloud(*args, check=False)
        if res.returncode != 0:
            self.fail('minicloud %s failed (exit %d): %s%s' % (
                ' '.join(args), res.returncode, res.stdout, res.stderr))
        return res

    def openstack(self, *args, cloud='minicloud', parse_json=False,
                  check=True, timeout=600):
        """Run the real ``openstack`` CLI of the project venv.

        Returns the CompletedProcess (text), or the parsed JSON output with
        ``parse_json=True`` (``-f json`` is appended).  With ``check=True`` a
        non-zero exit fails the test with stderr in the message.
        """
        exe = os.path.join(os.path.dirname(sys.executable), 'openstack')
        argv = [exe, '--os-cloud', cloud] + [str(a) for a in args]
        if parse_json:
            argv += ['-f', 'json']
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=CLOUDS_YAML)
        for key in list(env):
            # Only the clouds.yaml entry may decide the credentials.
            if key.startswith('OS_') and key not in (
                    'OS_CLIENT_CONFIG_FILE',):
                del env[key]
        res = subprocess.run(argv, capture_output=True, text=True, env=env,
                             timeout=timeout)
        if check and res.returncode != 0:
            self.fail('%s exited %d\nstdout: %s\nstderr: %s' % (
                ' '.join(argv[1:]), res.returncode, res.stdout, res.stderr))
        if parse_json:
            return json.loads(res.stdout) if res.stdout.strip() else None
        return res

    def _server_attrs(self, name, host, conn, network, port):
        attrs = {
            'name': name or 'ft-%s-%s' % (self.id().rsplit('.', 1)[-1][:30],
                                          uuid.uuid4().hex[:8]),
            'flavor_id': self._flavor_id(),
            'image_id': self._image_id(),
        }
        if port is not None:
            attrs['networks'] = [{'port': getattr(port, 'id', port)}]
        elif network is not None:
            attrs['networks'] = [{'uuid': getattr(network, 'id', network)}]
        else:
            attrs['networks'] = 'none'
        if host is not None:
            attrs['availability_zone'] = 'nova:%s' % host
        return attrs

    def _flavor_id(self):
        return self.state['flavor']['id']

    def _image_id(self):
        return self.state['image']['id']

    def _boot_conn(self, conn, host):
        """The connection that boots: pinning a host needs admin rights."""
        conn = conn or self.admin_conn
        if host is not None and conn is self.demo_conn:
            return self._demo_admin_conn
        return conn

    def _boot(self, name=None, host='c01', conn=None, network=None,
              port=None):
        attrs = self._server_attrs(name, host, conn, network, port)
        server = self._boot_conn(conn, host).compute.create_server(**attrs)
        self.addCleanup(self._delete_server, server.id)
        return server

    @staticmethod
    def _delete_retrying_5xx(compute, server_id, attempts=5):
        # nova answers a delete with 500 while it is still confirming a
        # resize (a race in nova's _confirm_resize, seen on a clean rig):
        # a cleanup tries again instead of leaking the server.
        from openstack import exceptions as sdk_exc
        for n in range(attempts):
            try:
                compute.delete_server(server_id, ignore_missing=True)
                return
            except sdk_exc.HttpException as exc:
                if (exc.status_code or 0) < 500 or n == attempts - 1:
                    raise
                time.sleep(2)

    def _delete_server(self, server_id):
        compute = self.admin_conn.compute
        server = compute.find_server(server_id, ignore_missing=True,
                                     all_projects=True)
        if server is None:
            return
        # nova leaks the source host's allocation of a live migration
        # whose server is deleted while it runs (the migration's consumer
        # in placement): the post-drain audit of that host would find it
        # on every later test.  The server's migrations, to drop theirs.
        migrations = [m.uuid for m in compute.migrations(server_id=server_id)
                      if getattr(m, 'uuid', None)]
        self._delete_retrying_5xx(compute, server_id)
        deadline = time.time() + 120
        while time.time() < deadline:
            if compute.find_server(server_id, ignore_missing=True,
                                   all_projects=True) is None:
                for consumer in migrations:
                    self.admin_conn.placement.delete(
                        '/allocations/%s' % consumer, raise_exc=False)
                return
            time.sleep(1)
        # A server on a dead compute stays DELETING for ever; say so.
        raise AssertionError('server %s was not deleted within 120 s'
                             % server_id)

    def enable_computes(self, *hosts):
        """Enable the disabled nova-compute services of these hosts (of
        every host when none is named): a cleanup that leaves the rig as
        the next test expects it."""
        compute = self.admin_conn.compute
        for svc in compute.services(binary='nova-compute'):
            if (not hosts or svc.host in hosts) and svc.status == 'disabled':
                compute.enable_service(svc, host=svc.host,
                                       binary=svc.binary)
        self.clear_leases(*hosts)

    def popen_cli(self, *args):
        """Start the real ``openstack`` CLI (the minicloud's admin) in the
        background; killed at cleanup if still running."""
        exe = os.path.join(os.path.dirname(sys.executable), 'openstack')
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=CLOUDS_YAML)
        for key in list(env):
            if key.startswith('OS_') and key != 'OS_CLIENT_CONFIG_FILE':
                del env[key]
        proc = subprocess.Popen(
            [exe, '--os-cloud', 'minicloud'] + [str(a) for a in args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def lease_of(self, host):
        """Who holds ``host`` (an ``ops/lease.py`` Holder), or None."""
        from osc_nodeops.ops import lease
        return lease.Store(self.admin_conn.compute).get(host)

    def clear_leases(self, *hosts):
        """Drop the lease entries of these hosts (of every host when none
        is named), as a cleanup: a lease a test left (a killed run's)
        would keep the next test's run off the host until it expires."""
        from osc_nodeops.ops import lease
        store = lease.Store(self.admin_conn.compute)
        for host in store.all():
            if not hosts or host in hosts:
                store.delete(host)

    def create_server(self, name=None, host='c01', conn=None, network=None,
                      port=None, stopped=False, wait=True):
        """Boot one server of the tiny flavor and image.

        ``host`` pins it to a compute host (``availability_zone`` =
        ``nova:HOST``, admin only: a demo-owned server pinned to a host is
        booted by the admin user scoped to project demo); ``host=None`` lets
        the scheduler choose.  ``network``/``port`` (object or ID) give it a
        NIC, otherwise it boots with ``--nic none``.  ``stopped=True`` stops
        it once ACTIVE (implies waiting).  A cleanup deletes it and waits
        until it is gone.  Returns the SDK Server (refreshed after waits).
        """
        server = self._boot(name, host, conn, network, port)
        if wait or stopped:
            server = self.wait_for_server(server.id, 'ACTIVE')
        if stopped:
            self.admin_conn.compute.stop_server(server.id)
            server = self.wait_for_server(server.id, 'SHUTOFF')
        return server

    def create_servers(self, count, host='c01', stopped=False, wait=True,
                       **kw):
        """Boot ``count`` servers (one API call each), then wait once."""
        name = kw.pop('name', None)
        servers = []
        for i in range(count):
            n = '%s-%d' % (name, i) if name else None
            servers.append(self._boot(n, host, **kw))
        if not (wait or stopped):
            return servers
        servers = self._wait_all([s.id for s in servers], 'ACTIVE')
        if stopped:
            for s in servers:
                self.admin_conn.compute.stop_server(s.id)
            servers = self._wait_all([s.id for s in servers], 'SHUTOFF')
        return servers

    def _wait_all(self, ids, status, timeout=180):
        found = {}
        deadline = time.time() + timeout
        while True:
            for sid in ids:
                if sid in found:
                    continue
                s = self.admin_conn.compute.get_server(sid)
                if s.status == status and s.task_state is None:
                    found[sid] = s
                elif s.status == 'ERROR':
                    self.fail('server %s went ERROR waiting for %s: %s' % (
                        sid, status, s.fault))
            if len(found) == len(ids):
                return [found[sid] for sid in ids]
            if time.time() > deadline:
                self.fail('servers %s not %s within %d s' % (
                    sorted(set(ids) - set(found)), status, timeout))
            time.sleep(1)

    def create_volume(self, size=1, name=None, conn=None, wait=True):
        """Create a cinder volume (fake backend); cleanup deletes it.

        The cleanup detaches nothing: delete servers first (cleanups run in
        reverse order, so create the volume before the server it is
        attached to, or detach it yourself).
        """
        conn = conn or self.admin_conn
        vol = conn.block_storage.create_volume(
            size=size, name=name or 'ft-vol-%s' % uuid.uuid4().hex[:8])
        self.addCleanup(self._delete_volume, vol.id)
        if wait:
            vol = self.wait_for_volume(vol.id, 'available')
        return vol

    def _delete_volume(self, volume_id):
        bs = self.admin_conn.block_storage
        deadline = time.time() + 60
        while time.time() < deadline:
            vol = bs.find_volume(volume_id, ignore_missing=True,
                                 all_projects=True)
            if vol is None:
                return
            if vol.status in ('available', 'error'):
                bs.delete_volume(volume_id, ignore_missing=True)
            time.sleep(1)
        raise AssertionError('volume %s was not deleted within 60 s'
                             % volume_id)

    def wait_for_volume(self, volume_id, status, timeout=60):
        """Poll a volume until it has ``status``; fail clearly."""
        bs = self.admin_conn.block_storage
        deadline = time.time() + timeout
        while True:
            vol = bs.get_volume(volume_id)
            if vol.status == status:
                return vol
            if vol.status.startswith('error') and status != vol.status:
                self.fail('volume %s went %s waiting for %s' % (
                    volume_id, vol.status, status))
            if time.time() > deadline:
                self.fail('volume %s not %s within %d s: %s' % (
                    volume_id, status, timeout, vol.status))
            time.sleep(1)

    def wait_for_server(self, server_id, status, timeout=120):
        """Poll until the server has ``status`` and no task; fail clearly."""
        deadline = time.time() + timeout
        last = None
        while True:
            last = self.admin_conn.compute.get_server(server_id)
            if last.status == status and last.task_state is None:
                return last
            if last.status == 'ERROR' and status != 'ERROR':
                self.fail('server %s went ERROR waiting for %s: %s' % (
                    server_id, status, last.fault))
            if time.time() > deadline:
                self.fail('server %s not %s within %d s: status %s, task '
                          'state %s, host %s' % (
                              server_id, status, timeout, last.status,
                              last.task_state, last.compute_host))
            time.sleep(1)


class GrownRigTestCase(FunctionalTestCase):
    """A class that needs more compute hosts than the rig's usual three.

    Inside its lock, ``setUpClass`` grows the rig to ``COMPUTES`` hosts
    (``MINICLOUD_COMPUTES=N minicloud up``: the new computes start, the
    aggregates are split again, first half / second half) and
    ``tearDownClass`` restores the exact state before: ``up`` with the
    former count stops the extra computes and deletes their nova-compute
    services, resource providers and agents, and the aggregates are back;
    the class fails when the rig does not look as before.  One grow per
    class (about a minute each way)."""

    COMPUTES = 6

    @classmethod
    def _up(cls, computes):
        settings = cls.state.get('settings') or {}
        env = dict(os.environ, MINICLOUD_COMPUTES=str(computes))
        args = []
        if settings.get('host_size'):
            env['MINICLOUD_HOST_SIZE'] = ','.join(
                str(n) for n in settings['host_size'])
        if settings.get('token_ttl'):
            args = ['--token-ttl', str(settings['token_ttl'])]
        res = subprocess.run([MINICLOUD, 'up'] + args, capture_output=True,
                             text=True, env=env, timeout=1200)
        if res.returncode != 0:
            raise RuntimeError('MINICLOUD_COMPUTES=%d minicloud up failed '
                               '(exit %d):\n%s' % (computes, res.returncode,
                                                   res.stderr[-3000:]))
        with open(os.path.join(STATE_DIR, 'minicloud.json')) as f:
            cls.state = json.load(f)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls._before_state = cls.state
            cls._before = cls.rig_view()
            cls._before_computes = len(cls.state['compute_hosts'])
            cls._up(cls.COMPUTES)
        except BaseException:
            try:
                cls._restore()
            finally:
                cls._release_lock()
            raise

    @classmethod
    def _restore(cls):
        cls.state = cls._before_state
        cls._up(cls._before_computes)
        after = cls.rig_view()
        if after != cls._before:
            raise AssertionError('the rig was not restored:\nbefore %s\n'
                                 'after  %s' % (cls._before, after))

    @classmethod
    def tearDownClass(cls):
        try:
            cls._restore()
        finally:
            super().tearDownClass()


class FaultsMixin(object):
    """The fault proxy behind cloud ``minicloud-faulty``: set faults for a
    test (cleared at its end) and count what the proxy injected."""

    def set_faults(self, service, **fractions):
        """``minicloud faults set SERVICE KEY=VALUE...``; ``reset_after``
        stands for the key ``reset-after``."""
        self.addCleanup(self.minicloud, 'faults', 'clear')
        self.minicloud('faults', 'set', service, *(
            '%s=%s' % (k.replace('_', '-').lstrip('-'), v)
            for k, v in fractions.items()))

    def fault_mark(self):
        """Where the proxy's log ends now (for :meth:`injected_since`)."""
        log = self.state['faults_log']
        return os.path.getsize(log) if os.path.exists(log) else 0

    def injected_since(self, mark, service=None):
        """The kinds of fault injected since MARK (``503``, ``reset``,
        ``hang``...), for SERVICE or for every service."""
        try:
            with open(self.state['faults_log']) as f:
                f.seek(mark)
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        kinds = []
        for ln in lines:
            parts = ln.split()
            if len(parts) >= 3 and service in (None, parts[1]):
                kinds.append(parts[2])
        return kinds
