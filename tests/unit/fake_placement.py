"""A placement API in memory, behind the keystoneauth-adapter surface that
``ops/cloud/placement.py`` uses (``request``, ``get_endpoint_data``,
``default_microversion``): resource providers with trees, allocations with
consumer generations, 409 on a stale generation and on missing capacity
(``capacity``), as placement answers."""

import json
import re
import types

import requests


def _response(status, body=None):
    resp = requests.Response()
    resp.status_code = status
    resp.headers['content-type'] = 'application/json'
    resp._content = json.dumps(body).encode() if body is not None else b''
    return resp


class FakePlacement(object):

    def __init__(self, max_microversion='1.39'):
        self.providers = {}     # uuid -> {'name', 'root'}
        self.consumers = {}     # uuid -> dict allocations/generation/...
        self.capacity = {}      # uuid -> {rc: max total}, when limited
        self.calls = []         # (method, url, microversion)
        self.default_microversion = None
        self.max_microversion = max_microversion
        self.before_put = None  # callable(consumer): a concurrent change

    def get_endpoint_data(self):
        return types.SimpleNamespace(min_microversion='1.0',
                                     max_microversion=self.max_microversion)

    def add_provider(self, uuid, name, root=None):
        self.providers[uuid] = {'name': name, 'root': root or uuid}

    def allocate(self, consumer, allocs, project='p1', user='u1'):
        """Set a consumer's allocations (a new generation, as placement)."""
        old = self.consumers.get(consumer)
        self.consumers[consumer] = {
            'allocations': {rp: dict(r) for rp, r in allocs.items()},
            'generation': old['generation'] + 1 if old else 1,
            'project_id': project, 'user_id': user}

    def allocations_of(self, consumer):
        c = self.consumers.get(consumer)
        return {} if c is None else c['allocations']

    def usage(self, rp):
        out = {}
        for c in self.consumers.values():
            for rc, n in c['allocations'].get(rp, {}).items():
                out[rc] = out.get(rc, 0) + n
        return out

    def request(self, url, method, microversion=None, raise_exc=True,
                timeout=None, json=None, params=None):
        assert timeout, 'every placement call has a timeout'
        self.calls.append((method, url, microversion))
        if url == '/resource_providers' and method == 'GET':
            params = params or {}
            found = [{'uuid': u, 'name': p['name'],
                      'root_provider_uuid': p['root']}
                     for u, p in sorted(self.providers.items())
                     if params.get('name') in (None, p['name'])
                     and params.get('in_tree') in (None, p['root'])]
            return _response(200, {'resource_providers': found})
        m = re.match(r'^/allocations/([^/]+)$', url)
        if m and method == 'GET':
            c = self.consumers.get(m.group(1))
            if c is None:
                return _response(200, {'allocations': {}})
            return _response(200, {
                'allocations': {rp: {'resources': dict(r), 'generation': 1}
                                for rp, r in c['allocations'].items()},
                'consumer_generation': c['generation'],
                'project_id': c['project_id'], 'user_id': c['user_id']})
        if m and method == 'PUT':
            return self._put(m.group(1), json)
        return _response(404, {'errors': [{'detail': 'no such URL'}]})

    def _put(self, consumer, body):
        if self.before_put is not None:
            hook, self.before_put = self.before_put, None
            hook(consumer)
        c = self.consumers.get(consumer)
        gen = None if c is None else c['generation']
        if body.get('consumer_generation') != gen:
            return _response(409, {'errors': [{
                'detail': 'consumer generation conflict', 'code':
                'placement.concurrent_update'}]})
        allocs = {rp: dict(a['resources'])
                  for rp, a in body['allocations'].items()}
        for rp, res in allocs.items():
            if rp not in self.providers:
                return _response(400, {'errors': [{
                    'detail': 'no provider %s' % rp}]})
            limit = self.capacity.get(rp)
            if limit:
                used = self.usage(rp)
                for rc, n in res.items():
                    if used.get(rc, 0) + n > limit.get(rc, 0):
                        return _response(409, {'errors': [{
                            'detail': 'Unable to allocate inventory: '
                                      'not enough %s on %s' % (rc, rp)}]})
        self.consumers[consumer] = {
            'allocations': allocs, 'generation': (gen or 0) + 1,
            'project_id': body['project_id'], 'user_id': body['user_id']}
        return _response(204)
