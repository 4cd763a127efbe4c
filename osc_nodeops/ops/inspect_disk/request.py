"""What to inspect, and the checks done before anything changes.

A :class:`Request` says which server, which disk, what to do and who
approved it; :func:`check` refuses a bad one (usage errors exit 2, the rest
1) and :func:`resolve` finds the server's domain name and host through the
API, then checks that it runs on this node.
"""

import configparser
import dataclasses
import math
import os
import re
import socket
import xml.etree.ElementTree as ET

from openstack import exceptions as sdk_exc

from osc_nodeops import errors
from osc_nodeops.privileged import proc

DEFAULT_LIBVIRT_URI = 'qemu:///system'
DEFAULT_INSTANCES_PATH = '/var/lib/nova/instances'
DEFAULT_STATE_DIR = '/var/lib/osc-nodeops/inspect'
DEFAULT_AUDIT_LOG = '/var/log/osc-nodeops/inspect-disk.log'
DEFAULT_NOVA_CONF = '/etc/nova/nova.conf'

ACTIONS = ('list', 'cat', 'copy-out', 'exec', 'shell', 'cleanup')

# nova: instance_name_template 'instance-%08x'; anything usable as a file
# name component and nothing else.
_INSTANCE_NAME_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,254}')


class InspectError(errors.NodeOpsError):
    """A refused input or a failed step; the message is one line."""


@dataclasses.dataclass
class Target(object):
    server_id: str
    name: str
    instance_name: str
    host: str


@dataclasses.dataclass
class Request(object):
    """One inspect-disk run.  ``target`` is the resolved server; the CLI
    gives ``server`` (name or ID) and :func:`resolve` fills ``target``."""
    target: Target | None = None
    approved_by: str = ''
    reason: str = ''
    disk: str = 'disk'
    partition: int | None = None
    read_write: bool = False
    connector: str = 'auto'
    libvirt_uri: str = DEFAULT_LIBVIRT_URI
    instances_path: str = DEFAULT_INSTANCES_PATH
    state_dir: str = DEFAULT_STATE_DIR
    audit_log: str = DEFAULT_AUDIT_LOG
    action: str = 'list'
    action_args: tuple = ()
    step_timeout: float = 30.0
    server: str | None = None
    host: str | None = None
    nova_config: str = DEFAULT_NOVA_CONF
    out: object = None  # binary stream --cat writes to


def require_root(what='inspect-disk must run as root on the compute node '
                      '(it suspends the domain and mounts the disk)'):
    if not proc.is_root():
        raise InspectError(what)


def check_approval(req):
    if not (req.approved_by or '').strip() or \
            not (req.reason or '').strip():
        raise errors.UsageError(
            '--approved-by WHO and --reason TEXT are required: viewing a '
            'user\'s data needs approval first')


def check_step_timeout(value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and
            value > 0):
        raise errors.UsageError('--step-timeout must be a positive number '
                                'of seconds, got %r' % (value,))


def check_arguments(req):
    """The usage errors of a request, judged from its arguments alone
    (the command calls it before any cloud call, before root)."""
    if req.action not in ACTIONS:
        raise errors.UsageError(
            'say what to do: --list PATH, --cat PATH, --copy-out PATH DEST, '
            '--exec CMD, --shell or --cleanup')
    if req.action == 'cleanup':
        return
    if not req.server and req.target is None:
        raise errors.UsageError('SERVER is required')
    check_step_timeout(req.step_timeout)
    check_approval(req)


def check(req):
    """Refuse a request that cannot run: before root, before the API."""
    check_arguments(req)
    if req.action != 'cleanup':
        require_root()


def resolve(compute, req):
    """``req`` with its target and instances path resolved and checked."""
    target = req.target or resolve_server(compute, req.server)
    check_target(target, local_host(req.host, req.nova_config))
    return dataclasses.replace(
        req, target=target,
        instances_path=instances_path(req.instances_path, req.nova_config))


def resolve_server(compute, name_or_id):
    """Server by name or ID (all projects): UUID, instance name, host."""
    try:
        server = compute.find_server(name_or_id, ignore_missing=True,
                                     all_projects=True)
    except sdk_exc.DuplicateResource:
        raise InspectError('more than one server is named %r; use its ID'
                           % name_or_id)
    if server is None:
        raise InspectError('no server %r' % name_or_id)
    server = compute.get_server(server.id)
    if not server.instance_name or not server.compute_host:
        raise InspectError(
            'server %s: the API did not return its host and instance name '
            '(OS-EXT-SRV-ATTR:*); this needs admin credentials' % server.id)
    return Target(server_id=server.id, name=server.name,
                  instance_name=server.instance_name,
                  host=server.compute_host)


def nova_conf_value(key, nova_conf=DEFAULT_NOVA_CONF, section='DEFAULT'):
    """One value of nova.conf ('' when the file or the key is missing)."""
    if not nova_conf or not os.path.exists(nova_conf):
        return ''
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(nova_conf)
        return parser.get(section, key, fallback='').strip()
    except configparser.Error:
        return ''


def local_host(override=None, nova_conf=DEFAULT_NOVA_CONF):
    """The name nova uses for this node.

    ``--host`` if given; else ``[DEFAULT] host`` of nova.conf; else the
    machine's hostname (nova's own default for ``host``).
    """
    return override or nova_conf_value('host', nova_conf) or \
        socket.gethostname()


def instances_path(override=None, nova_conf=DEFAULT_NOVA_CONF):
    """``--instances-path``, else nova.conf's, else nova's default."""
    return override or nova_conf_value('instances_path', nova_conf) or \
        DEFAULT_INSTANCES_PATH


def check_target(target, this_host):
    if target.host != this_host:
        raise InspectError(
            'server %s (%s) is on host %s, not on this node (%s); run this '
            'on %s (or pass --host if this node is named differently)' % (
                target.server_id, target.name, target.host, this_host,
                target.host))
    if not _INSTANCE_NAME_RE.fullmatch(target.instance_name or '') or \
            '..' in target.instance_name:
        raise InspectError('refusing instance name %r: not a plain file '
                           'name' % target.instance_name)


# ------------------------------------------------------------------- disks

@dataclasses.dataclass
class Disk(object):
    name: str        # file name: disk, disk.local, disk.eph0 ...
    path: str
    target: str      # vda, vdb
    fmt: str         # qcow2, raw


def domain_disks(xml_text):
    """File-backed disks of a domain XML, in order."""
    root = ET.fromstring(xml_text)
    disks = []
    for d in root.findall('./devices/disk'):
        if d.get('device', 'disk') != 'disk':
            continue
        source = d.find('source')
        path = source.get('file') if source is not None else None
        if not path:
            continue
        target = d.find('target')
        driver = d.find('driver')
        disks.append(Disk(name=os.path.basename(path), path=path,
                          target=(target.get('dev') or ''
                                  if target is not None else ''),
                          fmt=(driver.get('type') if driver is not None
                               else None) or 'raw'))
    return disks


def select_disk(disks, wanted, instances_path):
    """The disk called ``wanted`` (file name or target dev), checked.

    Its path must lie inside the instances directory (after resolving
    symlinks) and exist.
    """
    found = [d for d in disks if wanted in (d.name, d.target)]
    if not found:
        raise InspectError('the domain has no disk %r (it has: %s)' % (
            wanted, ', '.join('%s (%s)' % (d.name, d.target) for d in disks)
            or 'no file-backed disks'))
    disk = found[0]
    base = os.path.realpath(instances_path)
    real = os.path.realpath(disk.path)
    if os.path.commonpath([base, real]) != base or real == base:
        raise InspectError('disk path %s is outside the instances directory '
                           '%s; refusing' % (disk.path, instances_path))
    if not os.path.isfile(real):
        raise InspectError('disk %s is missing (%s)' % (disk.name, disk.path))
    if disk.fmt not in ('qcow2', 'raw'):
        raise InspectError('disk %s has format %r; only qcow2 and raw are '
                           'supported' % (disk.name, disk.fmt))
    return dataclasses.replace(disk, path=real)
