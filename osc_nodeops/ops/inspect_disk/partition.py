"""Partitions of a connected disk: which one, its device, how to mount it."""

import dataclasses
import os
import re

from osc_nodeops import errors
from osc_nodeops.ops.inspect_disk import host
from osc_nodeops.ops.inspect_disk.request import InspectError
from osc_nodeops.privileged import blockdev
from osc_nodeops.privileged import proc

# Partition types that hold a Linux file system.
LINUX_PART_TYPES = ('83', '0fc63daf-8483-4772-8e79-3d69d8477de4',
                    '44479540-f297-41b2-9af7-d131d5f0458a',  # root x86
                    '4f68bce3-e8cd-4db1-96e7-fbcaf984b709',  # root x86-64
                    '933ac7e1-2eb4-4f13-b844-0e14e2aef915')  # /home
LINUX_FS = ('ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'jfs', 'reiserfs')


@dataclasses.dataclass
class Partition(object):
    number: int      # 0: the whole disk (no partition table)
    offset: int
    size: int
    type: str


def partitions(table, disk_size=None):
    """Partitions of an ``sfdisk -J`` table (None: the whole disk is one)."""
    if table is None:
        return [Partition(0, 0, disk_size or 0, '')]
    sector = int(table.get('sectorsize', 512))
    out: list[Partition] = []
    for p in table.get('partitions', []):
        node = p.get('node', '')
        m = re.search(r'(\d+)$', node)
        number = int(m.group(1)) if m else len(out) + 1
        out.append(Partition(number, int(p['start']) * sector,
                             int(p['size']) * sector,
                             str(p.get('type', '')).lower()))
    return out


def choose_partition(parts, wanted=None):
    """``--partition N`` or the first partition with a Linux type."""
    if wanted is not None:
        for p in parts:
            if p.number == wanted:
                return p
        raise InspectError('no partition %d (the disk has: %s)' % (
            wanted, ', '.join(str(p.number) for p in parts) or 'none'))
    for p in parts:
        if p.number == 0 or p.type in LINUX_PART_TYPES:
            return p
    raise InspectError('no Linux partition found (partitions: %s); pick one '
                       'with --partition N' % ', '.join(
                           '%d type %s' % (p.number, p.type) for p in parts))


def find(device, wanted=None):
    """The partition of ``device`` to mount (``--partition`` or the first
    Linux one)."""
    table = blockdev.read_partition_table(device)
    size = os.path.getsize(device) if os.path.isfile(device) else 0
    return choose_partition(partitions(table, size), wanted)


def source_device(device, part, kind, read_only, journal_loop):
    """The block device holding ``part``: ``/dev/nbdXpN`` if the kernel
    made one, else a loop device at the partition's offset (journalled by
    ``journal_loop(**record)`` before and after it is attached)."""
    node = '%sp%d' % (device, part.number)
    if kind == 'nbd' and part.number and os.path.exists(node):
        journal_loop(device=None)
        return node
    journal_loop(backing=device, device=None)
    loop = blockdev.loop_attach(device, part.offset, part.size,
                                read_only=read_only)
    journal_loop(backing=device, device=loop)
    return loop


def file_system(source, number):
    """The Linux file system type on ``source``, or a refusal."""
    fstype = blockdev.probe(source).get('TYPE')
    if not fstype:
        raise InspectError('partition %d holds no file system blkid '
                           'recognises' % number)
    if fstype not in LINUX_FS:
        raise InspectError('partition %d holds %s, not a Linux file '
                           'system; pick one with --partition N' % (
                               number, fstype))
    return fstype


def mount_options(fstype, read_write=False):
    """Options that truly write nothing when read-only.

    A plain ``ro`` mount of ext3/ext4 still replays a dirty journal (it
    writes to the device); ``noload`` skips that.  XFS needs
    ``norecovery``, btrfs ``nologreplay``.  ``nodev,nosuid,noexec``: the
    guest's files are untrusted.
    """
    base = ['nodev', 'nosuid', 'noexec']
    if read_write:
        return ['rw'] + base
    extra = {'ext3': ['noload'], 'ext4': ['noload'], 'xfs': ['norecovery'],
             'btrfs': ['nologreplay']}.get(fstype, [])
    return ['ro'] + extra + base


def detach_loops(loop, connect, fail):
    """Detach the recorded loop device (if it still points at our image)
    and any other backed by our image; returns (ok, what was done)."""
    backing = loop.get('backing') or connect.get('image')
    loops = []
    if loop.get('device') and backing and \
            host.loop_backing(loop['device']) == backing:
        loops.append(loop['device'])
    if backing:
        for dev in host.loops_backed_by(backing):
            if dev not in loops:
                loops.append(dev)
    ok, done = True, []
    for dev in loops:
        try:
            host.again_while_busy(lambda: blockdev.loop_detach(dev))
            done.append('loop %s' % dev)
        except proc.PrivilegedError as exc:
            ok = False
            fail(errors.one_line(exc, cut='', style=errors.PLAIN))
    return ok, done
