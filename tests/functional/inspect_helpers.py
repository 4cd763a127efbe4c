"""Real disks, libvirt test-driver domains and leftover checks for the
inspect-disk functional tests.

Disks are made without root: ``mkfs.ext4 -d`` fills a file system image from
a directory, ``sfdisk`` writes a partition table into a sparse raw file, the
file system is copied in at the partition's offset and ``qemu-img`` turns
the result into qcow2.
"""

import hashlib
import os
import re
import shutil
import stat
import subprocess
import textwrap

SECTOR = 512
PART_START = 2048          # sectors
PART_SECTORS = 40960       # 20 MiB
DISK_BYTES = 64 << 20

TOOLS = ('qemu-img', 'qemu-nbd', 'nbdfuse', 'sfdisk', 'losetup', 'mount',
         'umount', 'blkid', 'mkfs.ext4')


def missing_requirements():
    """Why the local inspect tests cannot run here ('' when they can)."""
    why = []
    if os.geteuid() != 0:
        why.append('not root')
    if not os.path.exists('/dev/fuse'):
        why.append('no /dev/fuse')
    if not os.path.exists('/dev/loop-control'):
        why.append('no /dev/loop-control')
    for tool in TOOLS:
        if not shutil.which(tool):
            why.append('%s missing' % tool)
    try:
        import libvirt  # noqa: F401
    except ImportError:
        why.append('libvirt-python missing')
    return ', '.join(why)


def _fs_image(path, size, files):
    src = path + '.tree'
    os.makedirs(src)
    for rel, content in files.items():
        full = os.path.join(src, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if isinstance(content, tuple) and content[0] == 'symlink':
            os.symlink(content[1], full)
        elif isinstance(content, tuple) and content[0] == 'chardev':
            os.mknod(full, 0o666 | stat.S_IFCHR,
                     os.makedev(content[1], content[2]))
        elif isinstance(content, tuple) and content[0] == 'dir':
            os.makedirs(full, exist_ok=True)
            os.chmod(full, content[1])
        elif isinstance(content, tuple) and content[0] == 'file':
            # ('file', text, mode, {xattr: value})
            with open(full, 'w') as f:
                f.write(content[1])
            for name, value in (content[3] if len(content) > 3
                                else {}).items():
                os.setxattr(full, name, value)
            os.chmod(full, content[2])
        else:
            with open(full, 'w') as f:
                f.write(content)
    with open(path, 'wb') as f:
        f.truncate(size)
    subprocess.run(['mkfs.ext4', '-q', '-F', '-d', src, path], check=True,
                   capture_output=True)
    shutil.rmtree(src)


def make_disk(path, files, partitioned=True, fmt='qcow2'):
    """A disk image at ``path``: ext4 holding ``files`` ({rel: text}).

    ``partitioned``: an MBR with partition 1 (Linux, ext4) at sector 2048
    and partition 2 (Linux, empty); else the whole disk is the file system
    (like nova's disk.local).
    """
    raw = path + '.raw'
    if partitioned:
        fs = path + '.fs'
        _fs_image(fs, PART_SECTORS * SECTOR, files)
        with open(raw, 'wb') as f:
            f.truncate(DISK_BYTES)
        table = ('label: dos\nstart=%d, size=%d, type=83\n'
                 'start=%d, type=83\n' % (PART_START, PART_SECTORS,
                                          PART_START + PART_SECTORS))
        subprocess.run(['sfdisk', '-q', raw], input=table, text=True,
                       check=True, capture_output=True)
        with open(fs, 'rb') as src, open(raw, 'r+b') as dst:
            dst.seek(PART_START * SECTOR)
            shutil.copyfileobj(src, dst)
        os.unlink(fs)
    else:
        _fs_image(raw, 32 << 20, files)
    if fmt == 'raw':
        os.rename(raw, path)
    else:
        subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', fmt, raw,
                        path], check=True, capture_output=True)
        os.unlink(raw)
    return path


def domain_xml(name, uuid, disks, state_xml_path=None):
    """A libvirt test-driver ``<node>`` file with one running domain.

    ``disks``: [(path, target dev, format)].
    """
    disk_xml = ''.join(textwrap.dedent('''
        <disk type='file' device='disk'>
          <driver name='qemu' type='%s'/>
          <source file='%s'/>
          <target dev='%s' bus='virtio'/>
        </disk>''') % (fmt, p, dev) for p, dev, fmt in disks)
    xml = textwrap.dedent('''\
        <node>
        <domain type='test'>
          <name>%s</name>
          <uuid>%s</uuid>
          <memory>65536</memory>
          <vcpu>1</vcpu>
          <os><type arch='x86_64'>hvm</type></os>
          <devices>%s
          </devices>
        </domain>
        </node>
        ''') % (name, uuid, disk_xml)
    if state_xml_path:
        with open(state_xml_path, 'w') as f:
            f.write(xml)
    return xml


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _unescape(field):
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), field)


def leftovers(root):
    """Everything under ``root`` still in place: mounts, loop devices,
    nbdfuse and qemu-nbd processes (zombies excluded: they hold nothing).
    """
    found = []
    with open('/proc/mounts') as f:
        for line in f:
            mp = _unescape(line.split()[1])
            if mp == root or mp.startswith(root.rstrip('/') + '/'):
                found.append('mount %s' % mp)
    for name in sorted(os.listdir('/sys/block')):
        bf = '/sys/block/%s/loop/backing_file' % name
        if name.startswith('loop') and os.path.exists(bf):
            with open(bf) as f:
                backing = f.read().strip()
            if backing.startswith(root.rstrip('/') + '/'):
                found.append('loop /dev/%s -> %s' % (name, backing))
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                cmd = f.read().replace(b'\0', b' ').decode('utf-8',
                                                            'replace')
            with open('/proc/%s/stat' % pid) as f:
                state = f.read().rsplit(')', 1)[-1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state == 'Z':
            continue
        if ('nbdfuse' in cmd or 'qemu-nbd' in cmd) and root in cmd:
            found.append('process %s: %s' % (pid, cmd.strip()))
    return found
