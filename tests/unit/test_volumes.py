"""Volume pairs through the API (S17) and the re-attach action (S18)."""

from unittest import mock

from openstack.block_storage.v3 import _proxy as bs_proxy
from openstack.block_storage.v3 import attachment as _attachment
from openstack.block_storage.v3 import volume as _volume
from openstack.compute.v2 import volume_attachment as _vatt
import testtools

from osc_nodeops.ops import engine
from osc_nodeops.ops import recover
from osc_nodeops.ops import volumes
from tests.unit.test_engine import FakeClock
from tests.unit.test_recover import RecoverNova


class FakeCinder(object):
    """Volumes whose attachments follow nova's attach/detach calls."""

    def __init__(self, nova):
        self.nova = nova
        self.volumes = {}
        self.pending = {}
        self.bs = mock.create_autospec(bs_proxy.Proxy, instance=True)
        self.bs.get_volume.side_effect = self._get
        self.bs.volumes.side_effect = self._list
        self.bs.get_attachment.side_effect = lambda a: _attachment.Attachment(
            id=a, status='attached')
        c = nova.compute
        c.volume_attachments.side_effect = self._server_atts
        c.delete_volume_attachment.side_effect = self._detach
        c.create_volume_attachment.side_effect = self._attach
        self.calls = []

    def add(self, vid, server, device, detached=False, project=None):
        """A volume of ``server``'s project attached to it at ``device``
        (``detached``: available, as a detach leaves it)."""
        self.volumes[vid] = _volume.Volume(
            id=vid, name='vol-' + vid, status='in-use',
            project_id=project or server.project_id,
            attachments=[{'server_id': server.id, 'device': device,
                          'attachment_id': 'att-' + vid,
                          'host_name': server.compute_host}])
        if detached:
            self.volumes[vid].status = 'available'
            self.volumes[vid].attachments = []

    def _get(self, v):
        vid = getattr(v, 'id', v)
        if vid not in self.volumes:
            from tests.unit import fakes
            raise fakes.http_error(404, 'Volume %s could not be found.' % vid)
        return self._copy(self.volumes[vid])

    @staticmethod
    def _copy(v):
        return _volume.Volume(**v.to_dict(computed=False))

    def _list(self, details=True, all_projects=False):
        # each list is one tick of cinder's work
        for vid, (kind, server, device) in list(self.pending.items()):
            v = self.volumes[vid]
            if kind == 'detach':
                v.status, v.attachments = 'available', []
            else:
                v.status = 'in-use'
                v.attachments = [{'server_id': server, 'device': device,
                                  'attachment_id': 'att2-' + vid}]
            del self.pending[vid]
        return iter([self._copy(v) for v in self.volumes.values()])

    def _server_atts(self, server, **kw):
        sid = getattr(server, 'id', server)
        out = []
        for v in self.volumes.values():
            for a in v.attachments:
                if a['server_id'] == sid:
                    out.append(_vatt.VolumeAttachment(
                        volume_id=v.id, device=a['device'], server_id=sid,
                        attachment_id=a['attachment_id']))
        return iter(out)

    def _detach(self, server, volume, ignore_missing=True):
        # nova refuses to detach a boot volume (the BDM with boot_index 0,
        # at the server's root device name): 400.
        srv = self.nova.servers[getattr(server, 'id', server)]
        for a in self.volumes[volume].attachments:
            if a['server_id'] == srv.id and srv.root_device_name and \
                    a['device'] == srv.root_device_name:
                from tests.unit import fakes
                self.calls.append(('detach-refused', volume))
                raise fakes.http_error(
                    400, 'Cannot detach a root device volume')
        self.calls.append(('detach', volume))
        self.volumes[volume].status = 'detaching'
        self.pending[volume] = ('detach', server, None)

    def _attach(self, server, volume=None, device=None, **kw):
        self.calls.append(('attach', volume, device))
        self.volumes[volume].status = 'attaching'
        self.pending[volume] = ('attach', server, device)


class TestPairs(testtools.TestCase):

    def test_list_pairs_through_api(self):
        nova = RecoverNova()
        cinder = FakeCinder(nova)
        a = nova.add('a')
        nova.add('b')
        nova.add('c', host='c02')
        cinder.add('v2', a, '/dev/vdc')
        cinder.add('v1', a, '/dev/vdb')
        conn = mock.Mock(compute=nova.compute, block_storage=cinder.bs)
        pairs = volumes.list_pairs(conn, 'c01')
        self.assertEqual(
            [(a.id, 'a', 'v1', 'vol-v1', '/dev/vdb', 'in-use', 'attached'),
             (a.id, 'a', 'v2', 'vol-v2', '/dev/vdc', 'in-use', 'attached')],
            [volumes.pair_row(p) for p in pairs])


class _ReattachCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.nova = RecoverNova()
        self.cinder = FakeCinder(self.nova)
        self.ctx = engine.Context(
            self.nova.compute, 'c01',
            options={'timeout': 30, 'block_storage': self.cinder.bs},
            runtime=FakeClock().runtime())
        self.opts = recover.Options(poll_interval=1.0, timeout=30.0)

    def run_reattach(self, servers):
        items = [engine.PlanItem(s) for s in servers]
        return volumes.reattach_items(self.ctx, items, self.opts, None)


class TestReattach(_ReattachCase):

    def test_detach_then_attach_same_device(self):
        a = self.nova.add('a')
        self.cinder.add('v1', a, '/dev/vdb')
        self.cinder.add('v2', a, '/dev/vdc')
        out = self.run_reattach([a])
        self.assertEqual([('reattach', 'reattached')],
                         [(i.method, i.result) for i in out])
        self.assertEqual(
            [('detach', 'v1'), ('detach', 'v2'),
             ('attach', 'v1', '/dev/vdb'), ('attach', 'v2', '/dev/vdc')],
            self.cinder.calls)
        for vid in ('v1', 'v2'):
            self.assertEqual('in-use', self.cinder.volumes[vid].status)

    def test_never_detaches_from_a_server_that_is_not_up(self):
        a = self.nova.add('a', status='SHUTOFF', power_state=4)
        self.cinder.add('v1', a, '/dev/vdb')
        out = self.run_reattach([a])
        self.assertEqual([('skip', 'skipped')],
                         [(i.method, i.result) for i in out])
        self.assertIn('not up', out[0].reason)
        self.assertEqual([], self.cinder.calls)
        self.assertFalse(out[0].ok)

    def test_server_without_volumes_gets_no_row(self):
        a = self.nova.add('a')
        self.assertEqual([], self.run_reattach([a]))

    def test_partial_detach_is_undone(self):
        # issue 11 item 6: the second detach refused left the first volume
        # detached from a running server.
        from tests.unit import fakes
        a = self.nova.add('a')
        self.cinder.add('v1', a, '/dev/vdb')
        self.cinder.add('v2', a, '/dev/vdc')
        detach = self.nova.compute.delete_volume_attachment.side_effect

        def refuse_v2(server, volume, ignore_missing=True):
            if volume == 'v2':
                self.cinder.calls.append(('detach-refused', volume))
                raise fakes.http_error(409, 'volume v2 is busy')
            return detach(server, volume, ignore_missing=ignore_missing)
        self.nova.compute.delete_volume_attachment.side_effect = refuse_v2
        [item] = self.run_reattach([a])
        self.assertEqual('failed', item.result)
        self.assertIn('detaching v2 failed', item.message)
        self.assertIn('re-attached v1', item.message)
        self.assertEqual([('detach', 'v1'), ('detach-refused', 'v2'),
                          ('attach', 'v1', '/dev/vdb')], self.cinder.calls)
        for vid in ('v1', 'v2'):
            vol = self.cinder.volumes[vid]
            self.assertEqual('in-use', vol.status)
            self.assertEqual(a.id, vol.attachments[0]['server_id'])

    def test_failed_attach_is_tried_again(self):
        from tests.unit import fakes
        a = self.nova.add('a')
        self.cinder.add('v1', a, '/dev/vdb')
        self.cinder.add('v2', a, '/dev/vdc')
        attach = self.nova.compute.create_volume_attachment.side_effect
        failures = ['v2']

        def flaky(server, volume=None, device=None, **kw):
            if volume in failures:
                failures.remove(volume)
                raise fakes.http_error(500, 'attach failed')
            return attach(server, volume=volume, device=device, **kw)
        self.nova.compute.create_volume_attachment.side_effect = flaky
        [item] = self.run_reattach([a])
        self.assertEqual('reattached', item.result, item.message)
        self.assertEqual(
            [('detach', 'v1'), ('detach', 'v2'),
             ('attach', 'v1', '/dev/vdb'), ('attach', 'v2', '/dev/vdc')],
            self.cinder.calls)
        for vid in ('v1', 'v2'):
            self.assertEqual('in-use', self.cinder.volumes[vid].status)


RECORD = 'nodeops:reattach:'


class TestReattachBase(_ReattachCase):
    """Issue 20 item 9 (boot from volume) and issue 21 item 7 (a durable
    record of what the re-attach detached)."""

    def records(self, server):
        return {k: v for k, v in
                (self.nova.servers[server.id].metadata or {}).items()
                if k.startswith(RECORD)}

    def bfv(self, name='a', **kw):
        # nova shows image "" for a volume-backed server
        return self.nova.add(name, image='', root_device_name='/dev/vda',
                             **kw)


class TestBootFromVolume(TestReattachBase):

    def test_root_volume_left_attached_data_volumes_reattached(self):
        a = self.bfv()
        self.cinder.add('vroot', a, '/dev/vda')
        self.cinder.add('v1', a, '/dev/vdb')
        [item] = self.run_reattach([a])
        self.assertEqual(('reattach', 'reattached'),
                         (item.method, item.result), item.message)
        self.assertIn('root volume vroot (/dev/vda) left attached',
                      item.full_message())
        self.assertEqual([('detach', 'v1'), ('attach', 'v1', '/dev/vdb')],
                         self.cinder.calls)
        for vid in ('vroot', 'v1'):
            self.assertEqual('in-use', self.cinder.volumes[vid].status)

    def test_only_a_root_volume_is_reported_and_untouched(self):
        a = self.bfv()
        self.cinder.add('vroot', a, '/dev/vda')
        [item] = self.run_reattach([a])
        self.assertEqual(('skip', 'skipped'), (item.method, item.result))
        self.assertTrue(item.ok)
        self.assertIn('root volume vroot (/dev/vda)', item.full_message())
        self.assertEqual([], self.cinder.calls)

    def test_volume_backed_without_a_root_device_name_is_not_touched(self):
        a = self.nova.add('a', image='')
        self.cinder.add('vroot', a, '/dev/vda')
        self.cinder.add('v1', a, '/dev/vdb')
        [item] = self.run_reattach([a])
        self.assertEqual('skipped', item.result)
        self.assertFalse(item.ok)
        self.assertIn('cannot tell its root volume', item.full_message())
        self.assertEqual([], self.cinder.calls)


class TestDurableRecord(TestReattachBase):

    def test_record_written_before_the_first_detach_removed_after(self):
        a = self.nova.add('a')
        self.cinder.add('v1', a, '/dev/vdb')
        self.cinder.add('v2', a, '/dev/vdc')
        seen = []
        detach = self.nova.compute.delete_volume_attachment.side_effect

        def watch(server, volume, ignore_missing=True):
            seen.append(self.records(a))
            return detach(server, volume, ignore_missing=ignore_missing)
        self.nova.compute.delete_volume_attachment.side_effect = watch
        [item] = self.run_reattach([a])
        self.assertEqual('reattached', item.result, item.message)
        self.assertEqual({RECORD + 'v1': '/dev/vdb',
                          RECORD + 'v2': '/dev/vdc'}, seen[0])
        self.assertEqual({}, self.records(a))

    def test_rerun_attaches_what_a_stopped_run_left_detached(self):
        # What a run killed between the detaches and the attaches leaves:
        # the record, v1 detached (available), v2 still attached.
        a = self.nova.add('a', metadata={RECORD + 'v1': '/dev/vdb',
                                         RECORD + 'v2': '/dev/vdc',
                                         'owner': 'kept'})
        self.cinder.add('v1', a, '/dev/vdb', detached=True)
        self.cinder.add('v2', a, '/dev/vdc')
        [item] = self.run_reattach([a])
        self.assertEqual('reattached', item.result, item.message)
        self.assertEqual([('detach', 'v2'), ('attach', 'v1', '/dev/vdb'),
                          ('attach', 'v2', '/dev/vdc')], self.cinder.calls)
        for vid in ('v1', 'v2'):
            vol = self.cinder.volumes[vid]
            self.assertEqual(('in-use', a.id),
                             (vol.status, vol.attachments[0]['server_id']))
        self.assertEqual({'owner': 'kept'},
                         self.nova.servers[a.id].metadata)

    def test_record_alone_is_enough(self):
        a = self.nova.add('a', metadata={RECORD + 'v1': '/dev/vdb'})
        self.cinder.add('v1', a, '/dev/vdb', detached=True)
        [item] = self.run_reattach([a])
        self.assertEqual('reattached', item.result, item.message)
        self.assertEqual([('attach', 'v1', '/dev/vdb')], self.cinder.calls)
        self.assertEqual({}, self.records(a))

    def test_dry_run_shows_the_recorded_volume(self):
        a = self.nova.add('a', metadata={RECORD + 'v1': '/dev/vdb'})
        self.cinder.add('v1', a, '/dev/vdb', detached=True)
        self.opts.dry_run = True
        [item] = self.run_reattach([a])
        self.assertEqual(('reattach', 'planned'), (item.method, item.result))
        self.assertIn('v1', item.full_message())
        self.assertIn('interrupted', item.full_message())
        self.assertEqual([], self.cinder.calls)
        self.assertEqual({RECORD + 'v1': '/dev/vdb'}, self.records(a))

    def test_record_naming_another_projects_volume_is_refused(self):
        # server metadata is tenant-writable: a record never attaches a
        # volume of another project.
        a = self.nova.add('a', metadata={RECORD + 'vx': '/dev/vdb'})
        b = self.nova.add('b', project_id='p2', host='c02')
        self.cinder.add('vx', b, '/dev/vdb', detached=True)
        [item] = self.run_reattach([a])
        self.assertFalse(item.ok)
        self.assertIn('vx', item.full_message())
        self.assertIn('another project', item.full_message())
        self.assertEqual([], self.cinder.calls)
        self.assertEqual('available', self.cinder.volumes['vx'].status)

    def test_record_of_a_deleted_volume_is_dropped(self):
        a = self.nova.add('a', metadata={RECORD + 'gone': '/dev/vdb'})
        self.cinder.add('v1', a, '/dev/vdc')
        [item] = self.run_reattach([a])
        self.assertEqual('reattached', item.result, item.message)
        self.assertIn('gone', item.full_message())
        self.assertEqual({}, self.records(a))

    def test_not_up_keeps_the_record_and_says_so(self):
        a = self.nova.add('a', status='SHUTOFF', power_state=4,
                          metadata={RECORD + 'v1': '/dev/vdb'})
        self.cinder.add('v1', a, '/dev/vdb', detached=True)
        [item] = self.run_reattach([a])
        self.assertFalse(item.ok)
        self.assertIn('not up', item.full_message())
        self.assertIn(RECORD, item.full_message())
        self.assertEqual([], self.cinder.calls)
        self.assertEqual({RECORD + 'v1': '/dev/vdb'}, self.records(a))

    def test_attach_failing_for_good_keeps_the_record(self):
        from tests.unit import fakes
        a = self.nova.add('a')
        self.cinder.add('v1', a, '/dev/vdb')

        def refuse(server, volume=None, device=None, **kw):
            raise fakes.http_error(500, 'attach failed')
        self.nova.compute.create_volume_attachment.side_effect = refuse
        [item] = self.run_reattach([a])
        self.assertFalse(item.ok)
        self.assertEqual({RECORD + 'v1': '/dev/vdb'}, self.records(a))
        self.assertIn('rerun', item.full_message())
