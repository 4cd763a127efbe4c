"""Partition tables, loop devices, file systems: one argv each."""

import json

from osc_nodeops import errors
from osc_nodeops.privileged import proc


def read_partition_table(path, timeout=30):
    """``sfdisk -J PATH`` parsed, or ``None`` when there is no table."""
    res = proc.run(['sfdisk', '-J', path], timeout=timeout, check=False)
    if res.returncode != 0:
        if 'partition table' in (res.stderr or ''):
            return None
        raise proc.PrivilegedError('sfdisk -J %s failed (exit %d): %s' % (
            path, res.returncode, errors.one_line(res.stderr, cut='')))
    return json.loads(res.stdout)['partitiontable']


def loop_attach(path, offset, size, read_only=True, timeout=30):
    """``losetup -f --show [-r] -o OFFSET --sizelimit SIZE PATH``."""
    argv = ['losetup', '-f', '--show']
    if read_only:
        argv.append('-r')
    argv += ['-o', str(offset)]
    if size:
        argv += ['--sizelimit', str(size)]
    argv.append(path)
    return proc.run(argv, timeout=timeout).stdout.strip()


def loop_detach(device, timeout=30):
    return proc.run(['losetup', '-d', device], timeout=timeout)


def probe(device, timeout=30):
    """``blkid -p -o export DEVICE`` as a dict ({} when nothing found)."""
    res = proc.run(['blkid', '-p', '-o', 'export', device], timeout=timeout,
                   check=False)
    out = {}
    for line in res.stdout.splitlines():
        key, sep, value = line.partition('=')
        if sep:
            out[key] = value
    return out


def mount(device, mountpoint, fstype, options, timeout=60):
    return proc.run(['mount', '-t', fstype, '-o', ','.join(options), device,
                     mountpoint], timeout=timeout)


def umount(mountpoint, timeout=60):
    return proc.run(['umount', mountpoint], timeout=timeout)
