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
        self.bs.get_volume.side_effect = lambda v: self._copy(self.volumes[
            getattr(v, 'id', v)])
        self.bs.volumes.side_effect = self._list
        self.bs.get_attachment.side_effect = lambda a: _attachment.Attachment(
            id=a, status='attached')
        c = nova.compute
        c.volume_attachments.side_effect = self._server_atts
        c.delete_volume_attachment.side_effect = self._detach
        c.create_volume_attachment.side_effect = self._attach
        self.calls = []

    def add(self, vid, server, device):
        self.volumes[vid] = _volume.Volume(
            id=vid, name='vol-' + vid, status='in-use',
            attachments=[{'server_id': server.id, 'device': device,
                          'attachment_id': 'att-' + vid,
                          'host_name': server.compute_host}])

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


class TestReattach(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.nova = RecoverNova()
        self.cinder = FakeCinder(self.nova)
        self.ctx = engine.Context(
            self.nova.compute, 'c01',
            options={'timeout': 30, 'block_storage': self.cinder.bs})
        self.opts = recover.Options(poll_interval=1.0, timeout=30.0)

    def run_reattach(self, servers):
        clock = FakeClock()
        items = [engine.PlanItem(s) for s in servers]
        return volumes.reattach_items(
            self.ctx, items, self.opts, None,
            executor_kwargs={'clock': clock, 'wait': clock.wait,
                             'handle_sigint': False})

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
