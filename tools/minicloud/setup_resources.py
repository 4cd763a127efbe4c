"""Create the minicloud's identity and cloud resources, idempotently.

Run by ``minicloud up`` with the cloud venv's python::

    python setup_resources.py identity STATE_JSON
    python setup_resources.py cloud STATE_JSON

``identity`` (needs keystone only): projects ``service`` and ``demo``,
service users, user ``demo`` (member of ``demo``), the admin user also admin
in ``demo``, the catalog.  ``cloud`` (needs every service): flavor, image,
the shared network ``public`` with its two subnets, quotas.  Prints a JSON
object of the IDs it found or made on stdout.
"""

import json
import re
import sys
import time

import openstack


def admin_conn(st, project='admin'):
    return openstack.connect(
        auth_url=st['auth_url'], username='admin', password=st['password'],
        project_name=project, user_domain_name='Default',
        project_domain_name='Default', region_name='RegionOne',
        identity_api_version='3')


def identity(st):
    conn = admin_conn(st)
    idp = conn.identity
    roles = {r.name: r for r in idp.roles()}
    for name in ('admin', 'member', 'reader', 'service'):
        if name not in roles:
            roles[name] = idp.create_role(name=name)
    projects = {}
    for name in ('service', 'demo'):
        p = idp.find_project(name, domain_id='default')
        if p is None:
            p = idp.create_project(name=name, domain_id='default',
                                   description='minicloud ' + name)
        projects[name] = p

    def user(name, password, project, role_names):
        u = idp.find_user(name, domain_id='default')
        if u is None:
            u = idp.create_user(name=name, password=password,
                                domain_id='default',
                                default_project_id=project.id)
        for rn in role_names:
            idp.assign_project_role_to_user(project, u, roles[rn])
        return u

    for svc in st['service_users']:
        user(svc, st['password'], projects['service'], ['admin', 'service'])
    user('demo', st['password'], projects['demo'], ['member', 'reader'])
    admin = idp.find_user('admin', domain_id='default')
    idp.assign_project_role_to_user(projects['demo'], admin, roles['admin'])

    have = {s.type: s for s in idp.services()}
    endpoints = list(idp.endpoints())
    for stype, (name, url) in st['catalog'].items():
        svc = have.get(stype) or idp.create_service(name=name, type=stype)
        for iface in ('public', 'internal'):
            found = [e for e in endpoints
                     if e.service_id == svc.id and e.interface == iface]
            if found and found[0].url == url:
                continue
            for e in found:
                idp.delete_endpoint(e)
            idp.create_endpoint(service_id=svc.id, interface=iface, url=url,
                                region_id='RegionOne')
    return {'projects': {k: v.id for k, v in projects.items()}}


def wait(what, fn, timeout=240):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            res = fn()
            if res:
                return res
        except Exception as e:  # the service may still be starting
            last = e
        time.sleep(2)
    raise SystemExit('timed out waiting for %s (last error: %s)'
                     % (what, last))


def cloud(st):
    conn = admin_conn(st)
    out = {}
    hosts = st['hosts']

    def computes_up():
        svcs = [s for s in conn.compute.services(binary='nova-compute')
                if s.host in hosts and s.state == 'up']
        return len(svcs) == len(hosts)
    wait('nova-compute services up', computes_up)

    def hypervisors():
        hv = {h.name: h for h in conn.compute.hypervisors()}
        return all(h in hv for h in hosts) and hv
    wait('hypervisors', hypervisors)

    def providers():
        rps = {r.name: r for r in conn.placement.resource_providers()}
        if not all(h in rps for h in hosts):
            return False
        for h in hosts:
            inv = list(conn.placement.resource_provider_inventories(rps[h]))
            if not any(i.resource_class == 'VCPU' for i in inv):
                return False
        return rps
    wait('placement resource providers with inventory', providers)

    out['availability_zones'] = aggregates(conn, st['availability_zones'])
    out['forgotten'] = forget_hosts(conn, hosts)

    fl = conn.compute.find_flavor(st['flavor'], ignore_missing=True)
    if fl is None:
        fl = conn.compute.create_flavor(name=st['flavor'], vcpus=1, ram=64,
                                        disk=1, is_public=True)
    out['flavor'] = {'id': fl.id, 'name': fl.name}

    img = conn.image.find_image(st['image'], ignore_missing=True)
    if img is not None and img.status != 'active':
        conn.image.delete_image(img)
        img = None
    if img is None:
        with open(st['image_file'], 'rb') as f:
            data = f.read()
        img = conn.image.create_image(
            name=st['image'], disk_format='qcow2', container_format='bare',
            visibility='public', data=data, allow_duplicates=True)
        img = wait('image active', lambda: (
            lambda i: i if i.status == 'active' else None)(
                conn.image.get_image(img.id)), timeout=60)
    out['image'] = {'id': img.id, 'name': img.name}

    net = conn.network.find_network('public')
    if net is None:
        net = conn.network.create_network(
            name='public', shared=True, provider_network_type='flat',
            provider_physical_network='physnet1')
    subnets = {}
    for name, ver, cidr in (('public-v4', 4, '198.18.0.0/24'),
                            ('public-v6', 6, '2001:db8::/64')):
        sn = conn.network.find_subnet(name, network_id=net.id)
        if sn is None:
            # No DHCP: nothing serves it; IPAM allocates from the pool.
            sn = conn.network.create_subnet(
                name=name, network_id=net.id, ip_version=ver, cidr=cidr,
                is_dhcp_enabled=False)
        subnets[name] = {'id': sn.id, 'cidr': sn.cidr}
    out['networks'] = {'public': {'id': net.id, 'subnets': subnets}}

    projects = {p.name: p.id for p in conn.identity.projects()}
    for pname in ('admin', 'demo'):
        pid = projects[pname]
        conn.compute.update_quota_set(
            pid, instances=200, cores=400, ram=512000)
        conn.network.update_quota(
            pid, port=500, network=50, subnet=50, security_group=50,
            security_group_rule=500)
        try:
            conn.block_storage.update_quota_set(
                pid, volumes=200, gigabytes=2000, snapshots=100)
        except Exception as e:
            print('cinder quota for %s: %s' % (pname, e), file=sys.stderr)
    out['projects'] = projects
    return out


def aggregates(conn, azs):
    """Aggregate minicloud-AZ with availability zone AZ per entry of azs
    (AZ -> hosts); a host leaves the aggregate it no longer belongs to."""
    have = {a.name: a for a in conn.compute.aggregates()}
    wanted = {'minicloud-' + az: (az, hosts) for az, hosts in azs.items()}
    for name, agg in have.items():
        if not name.startswith('minicloud-'):
            continue
        keep = wanted.get(name, (None, []))[1]
        for h in agg.hosts or []:
            if h not in keep:
                try:
                    conn.compute.remove_host_from_aggregate(agg, h)
                except Exception as e:   # a server on it: its AZ stays
                    print('cannot remove %s from %s: %s' % (h, name, e),
                          file=sys.stderr)
    for name, (az, hosts) in wanted.items():
        agg = have.get(name)
        if agg is None:
            agg = conn.compute.create_aggregate(name=name,
                                                availability_zone=az)
        agg = conn.compute.get_aggregate(agg)
        for h in hosts:
            if h not in (agg.hosts or []):
                try:
                    conn.compute.add_host_to_aggregate(agg, h)
                except Exception as e:   # e.g. instances in another AZ
                    print('cannot add %s to %s: %s' % (h, name, e),
                          file=sys.stderr)
    # What the zones hold now (a host with servers keeps its zone).
    return {name[len('minicloud-'):]: sorted(a.hosts or [])
            for name, a in ((a.name, a) for a in conn.compute.aggregates())
            if name in wanted}


def forget_hosts(conn, hosts):
    """Delete what nova and neutron keep of the rig's compute hosts beyond
    ``hosts`` (an `up` with a lower MINICLOUD_COMPUTES stopped them): the
    nova-compute service (nova then drops its compute node, host mapping,
    aggregate membership and resource provider), a provider left behind,
    and the fake OVS agent.  Returns the hosts whose service is gone."""
    gone = []
    for svc in list(conn.compute.services(binary='nova-compute')):
        if svc.host in hosts or not re.match(r'^c\d\d$', svc.host or ''):
            continue
        for attempt in range(10):
            try:
                conn.compute.delete_service(svc)
                gone.append(svc.host)
                break
            except Exception as e:  # e.g. "still in use" for a moment
                if attempt == 9:
                    print('cannot delete nova-compute of %s: %s' % (
                        svc.host, e), file=sys.stderr)
                time.sleep(2)
    for rp in list(conn.placement.resource_providers()):
        if rp.name in gone:
            try:
                conn.placement.delete_resource_provider(rp)
            except Exception as e:
                print('cannot delete provider %s: %s' % (rp.name, e),
                      file=sys.stderr)
    for agent in list(conn.network.agents()):
        if agent.host in gone or (
                re.match(r'^c\d\d$', agent.host or '')
                and agent.host not in hosts and not agent.is_alive):
            conn.network.delete_agent(agent)
    return sorted(gone)


def main():
    phase, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        st = json.load(f)
    res = identity(st) if phase == 'identity' else cloud(st)
    json.dump(res, sys.stdout)


if __name__ == '__main__':
    main()
