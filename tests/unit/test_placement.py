"""Unit tests of the placement client's reads (``ops/cloud/placement``):
each call's URL, query and microversion, its timeout, and the reader each
request goes through.  (The allocation moves of ``--via-db`` are tested in
``test_recover_dbmove``.)"""

import testtools

from openstack import exceptions as sdk_exc

from osc_nodeops.ops.cloud import placement
from tests.unit import fake_placement

RP = '4e8e5957-649f-477b-9e5b-f1f75b21c03c'


class Recorder(object):
    """A keystoneauth adapter that answers every request with ANSWERS in
    turn (a body, or a status code) and records it."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    def request(self, url, method, **kwargs):
        self.requests.append((method, url, kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, int):
            return fake_placement._response(
                answer, {'errors': [{'detail': 'down'}]})
        return fake_placement._response(200, answer)


class TestReads(testtools.TestCase):

    def read(self, method, *args, answer=None, **client_kw):
        adapter = Recorder(answer or {})
        result = getattr(placement.Client(adapter, **client_kw),
                         method)(*args)
        [(verb, url, kwargs)] = adapter.requests
        self.assertEqual('GET', verb)
        self.assertFalse(kwargs.pop('raise_exc'))
        return result, url, kwargs

    def test_each_read_names_its_microversion(self):
        rps = {'resource_providers': [{'uuid': RP}]}
        for method, args, answer, want, url, params, version in (
                ('named', ('c01',), rps, [RP], '/resource_providers',
                 {'name': 'c01'}, '1.0'),
                ('tree', (RP,), rps, {RP}, '/resource_providers',
                 {'in_tree': RP}, '1.14'),
                ('enabled', (), rps, {RP}, '/resource_providers',
                 {'required': '!COMPUTE_STATUS_DISABLED'}, '1.22'),
                ('inventories', (RP,), {'inventories': {'VCPU': {
                    'total': 8}}}, {'VCPU': {'total': 8}},
                 '/resource_providers/%s/inventories' % RP, None, '1.0'),
                ('usages', (RP,), {'usages': {'VCPU': 2}}, {'VCPU': 2},
                 '/resource_providers/%s/usages' % RP, None, '1.0'),
                ('held', (RP,), {'allocations': {'c1': {'resources': {
                    'VCPU': 2}}}}, {'c1': {'VCPU': 2}},
                 '/resource_providers/%s/allocations' % RP, None, '1.0')):
            result, sent, kwargs = self.read(method, *args, answer=answer)
            self.assertEqual((want, url, version, params),
                             (result, sent, kwargs['microversion'],
                              kwargs.get('params')), method)

    def test_the_provider_of_a_name_at_1_28(self):
        # what --via-db has always asked (unchanged)
        result, _, kwargs = self.read(
            'provider', 'c01',
            answer={'resource_providers': [{'uuid': RP}]})
        self.assertEqual((RP, '1.28'), (result, kwargs['microversion']))

    def test_no_provider_of_a_name(self):
        self.assertEqual([], self.read('named', 'c09')[0])

    def test_timeout_of_its_own_or_the_sessions(self):
        _, _, kwargs = self.read('usages', RP)
        self.assertEqual(placement.HTTP_TIMEOUT, kwargs['timeout'])
        _, _, kwargs = self.read('usages', RP, timeout=None)
        self.assertNotIn('timeout', kwargs)   # the session's applies

    def test_every_request_goes_through_the_reader(self):
        seen = []

        def read(fn):
            seen.append(fn)
            return fn()
        self.read('inventories', RP, read=read)
        self.assertEqual(1, len(seen))

    def test_a_transient_fault_is_read_again(self):
        slept = []
        adapter = Recorder(503, {'usages': {'VCPU': 1}})
        client = placement.Client(adapter, sleep=slept.append)
        self.assertEqual({'VCPU': 1}, client.usages(RP))
        self.assertEqual(2, len(adapter.requests))
        self.assertEqual([1.0], slept)

    def test_a_refusal_is_raised(self):
        client = placement.Client(Recorder(404))
        self.assertRaises(sdk_exc.NotFoundException, client.usages, RP)
