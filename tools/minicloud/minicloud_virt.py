"""The minicloud's fake virt driver: hypervisors whose work takes time.

``nova-compute`` of the rig loads :class:`MinicloudDriver` (through the shim
``nova/virt/minicloud.py`` that ``minicloud up`` writes into the cloud venv;
this directory is on the compute's ``PYTHONPATH``).  It is nova's
``FakeDriverWithoutFakeNodes`` plus:

* live migrations that take time and report progress the way the libvirt
  driver does (the migration record's ``memory_*`` and, for a block
  migration, ``disk_*`` fields, and ``instance.progress``), that can be
  aborted (``live_migration_abort``: the server stays ACTIVE on its source,
  the migration ``cancelled``) and force-completed;
* cold migration/resize and evacuation/rebuild that take time;
* per-server behaviour from server metadata ``minicloud:live-migration``:
  ``never-converge``, ``fail``, ``slow:SECONDS``;
* the host's size (vCPUs, RAM, disk) from ``[minicloud]`` options.

Timing is read, for every operation, from ``$MINICLOUD_DIR/timing.json``
(written by ``minicloud timing``); no file means instant moves, as nova's own
fake driver does.  See ``doc/source/minicloud.rst``.

Nova-compute runs with native threads (nova's ``threading`` backend), so
``time.sleep`` here blocks only the live-migration executor thread, as the
libvirt driver's monitor loop does.
"""

import json
import os
import time

from oslo_config import cfg
from oslo_log import log as logging

from nova.compute import task_states
from nova.virt import fake

LOG = logging.getLogger(__name__)
CONF = cfg.CONF
CONF.register_opts([
    cfg.IntOpt('host_vcpus', default=fake.FakeDriver.vcpus),
    cfg.IntOpt('host_ram_mb', default=fake.FakeDriver.memory_mb),
    cfg.IntOpt('host_disk_gb', default=fake.FakeDriver.local_gb),
], group='minicloud')

MIB = 1024 * 1024
GIB = 1024 * MIB
METADATA_KEY = 'minicloud:live-migration'
# What `minicloud timing on` sets; also what a per-server behaviour uses
# when timing is off (a behaviour asked for by metadata always takes time).
DEFAULT_TIMING = {
    'memory_mbps': 25.0,   # MiB/s: the 64 MiB tiny flavor takes ~2.6 s
    'disk_mbps': 1024.0,   # MiB/s: its 1 GiB disk ~1 s (block migration)
    'cold': 2.0,           # s: cold migration / resize (source side)
    'rebuild': 2.0,        # s: evacuation / rebuild (spawn on the target)
    'interval': 0.5,       # s between progress updates
}
MAX_SECONDS = 3600.0


def timing():
    """The timing control file, or {} (instant) when there is none."""
    path = os.path.join(os.environ.get('MINICLOUD_DIR', ''), 'timing.json')
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    out = {}
    for k, v in doc.items():
        if k in DEFAULT_TIMING and isinstance(v, (int, float)) and v >= 0:
            out[k] = min(float(v), MAX_SECONDS * 1024)
    return out


def behaviour(instance):
    """(kind, seconds) from the server's metadata; tenant data: untrusted.

    kind is None (normal), 'never-converge', 'fail' or 'slow'.
    """
    try:
        value = (instance.metadata or {}).get(METADATA_KEY)
    except Exception:   # lazy-load trouble: behave normally
        return None, None
    if not isinstance(value, str):
        return None, None
    value = value.strip()
    if value in ('never-converge', 'fail'):
        return value, None
    if value.startswith('slow:'):
        try:
            secs = float(value[5:])
        except ValueError:
            secs = -1
        if 0 <= secs <= MAX_SECONDS:
            return 'slow', secs
    LOG.warning('ignoring %s=%r (want never-converge, fail or '
                'slow:SECONDS)', METADATA_KEY, value[:64], instance=instance)
    return None, None


class MinicloudDriver(fake.FakeDriverWithoutFakeNodes):

    def __init__(self, virtapi, read_only=False):
        self.vcpus = CONF.minicloud.host_vcpus
        self.memory_mb = CONF.minicloud.host_ram_mb
        self.local_gb = CONF.minicloud.host_disk_gb
        super().__init__(virtapi, read_only)
        # instance uuid -> 'abort' | 'complete', set by the API calls.
        self._requests = {}

    # -- live migration ----------------------------------------------------

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration=False,
                       migrate_data=None):
        kind, secs = behaviour(instance)
        t = timing()
        if kind is None and not t.get('memory_mbps'):
            # Instant, as nova's fake driver.
            post_method(context, instance, dest, block_migration,
                        migrate_data)
            return
        t = dict(DEFAULT_TIMING, **t)
        if not t['memory_mbps']:
            t['memory_mbps'] = DEFAULT_TIMING['memory_mbps']
        if not t['disk_mbps']:
            t['disk_mbps'] = DEFAULT_TIMING['disk_mbps']
        self._requests.pop(instance.uuid, None)
        outcome = self._run_live_migration(
            context, instance, block_migration, migrate_data, kind, secs, t)
        self._requests.pop(instance.uuid, None)
        LOG.info('minicloud live migration to %s: %s', dest, outcome,
                 instance=instance)
        if outcome == 'done':
            post_method(context, instance, dest, block_migration,
                        migrate_data)
        elif outcome == 'cancelled':
            recover_method(context, instance, dest, migrate_data,
                           migration_status='cancelled')
        else:
            # As libvirt when the migration job fails: roll back, the
            # migration record goes 'failed', the server stays ACTIVE on
            # its source.
            recover_method(context, instance, dest, migrate_data)

    def _run_live_migration(self, context, instance, block_migration,
                            migrate_data, kind, secs, t):
        flavor = instance.flavor
        mem_total = max(1, flavor.memory_mb) * MIB
        disk_total = (max(1, flavor.root_gb) * GIB
                      if block_migration else 0)
        mem_bw = t['memory_mbps'] * MIB
        disk_bw = t['disk_mbps'] * MIB
        if kind == 'slow':
            # The whole move takes `secs`, split as the bandwidths say.
            plain = disk_total / disk_bw + mem_total / mem_bw
            scale = (plain / secs) if secs > 0 else 1e9
            mem_bw *= scale
            disk_bw *= scale
        interval = max(0.05, t['interval'])
        migration = getattr(migrate_data, 'migration', None)
        mem_done = disk_done = 0
        # never-converge: the guest dirties pages as fast as they are sent
        # once the first pass is done; remaining hovers around a third.
        floor = mem_total // 3 if kind == 'never-converge' else 0
        fail_at = (disk_total + mem_total) / 2.0 if kind == 'fail' else None
        last = start = time.monotonic()
        while True:
            req = self._requests.get(instance.uuid)
            if req == 'abort':
                return 'cancelled'
            if req == 'destroyed':
                # The server was deleted while it migrated: the job dies
                # with the guest.
                return 'failed'
            if last - start > MAX_SECONDS:
                LOG.warning('minicloud: live migration ran %d s: failing it',
                            MAX_SECONDS, instance=instance)
                return 'failed'
            if req == 'complete':
                # libvirt pauses the guest (or switches to post-copy): the
                # rest goes across at once.
                mem_done = mem_total
                disk_done = disk_total
                self._progress(migration, instance, mem_total, mem_done, 0,
                               disk_total, disk_done)
                return 'done'
            time.sleep(interval)
            now = time.monotonic()
            dt, last = now - last, now
            if disk_done < disk_total:
                disk_done = int(min(disk_total, disk_done + disk_bw * dt))
            else:
                mem_done = int(mem_done + mem_bw * dt)
            if kind == 'never-converge':
                remaining = max(floor, mem_total - mem_done)
            else:
                mem_done = min(mem_done, mem_total)
                remaining = mem_total - mem_done
            self._progress(migration, instance, mem_total, mem_done,
                           remaining, disk_total, disk_done)
            if fail_at is not None and disk_done + mem_done >= fail_at:
                return 'failed'
            if disk_done >= disk_total and remaining <= 0:
                return 'done'

    @staticmethod
    def _progress(migration, instance, mem_total, mem_done, mem_left,
                  disk_total, disk_done):
        if migration is None:
            return
        try:
            migration.memory_total = int(mem_total)
            migration.memory_processed = int(mem_done)
            migration.memory_remaining = int(mem_left)
            migration.disk_total = int(disk_total)
            migration.disk_processed = int(disk_done)
            migration.disk_remaining = int(disk_total - disk_done)
            migration.save()
            left = mem_left + disk_total - disk_done
            instance.progress = int(100 - 100 * left /
                                    (mem_total + disk_total))
            instance.save()
        except Exception as e:   # as libvirt: progress is best effort
            LOG.warning('could not record migration progress: %s', e,
                        instance=instance)

    def live_migration_force_complete(self, instance):
        self._requests[instance.uuid] = 'complete'

    def live_migration_abort(self, instance):
        self._requests[instance.uuid] = 'abort'

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        if instance.uuid in self._requests or getattr(
                instance, 'task_state', None) == task_states.MIGRATING:
            self._requests[instance.uuid] = 'destroyed'
        return super().destroy(context, instance, network_info,
                               block_device_info, destroy_disks,
                               destroy_secrets)

    def post_live_migration(self, context, instance, block_device_info,
                            migrate_data=None):
        # On the source, once the guest runs on the destination: forget it
        # here (nova's FakeLiveMigrateDriver does the same).
        self.destroy(context, instance, network_info=None,
                     block_device_info=block_device_info)

    # -- cold migration, resize, evacuation, rebuild -------------------------

    @staticmethod
    def _take(what, instance):
        secs = timing().get(what, 0)
        if secs:
            LOG.info('minicloud: %s takes %.1f s', what, secs,
                     instance=instance)
            time.sleep(secs)

    def migrate_disk_and_power_off(self, context, instance, dest, flavor,
                                   network_info, block_device_info=None,
                                   timeout=0, retry_interval=0):
        self._take('cold', instance)
        return super().migrate_disk_and_power_off(
            context, instance, dest, flavor, network_info,
            block_device_info, timeout, retry_interval)

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        if instance.task_state == task_states.REBUILD_SPAWNING:
            self._take('rebuild', instance)
        return super().spawn(context, instance, image_meta, injected_files,
                             admin_password, allocations, network_info,
                             block_device_info, power_on, accel_info)
