"""Runbook S24: copy a dead node's local instance files to a live node.

Not supported by nova: an operator's last resort when there is no shared
storage.  The instance directories (``instance-xxxxxxxx/`` in the guide's
days, ``<uuid>/`` since nova Grizzly) and ``_base/`` of the dead node's
``/var/lib/nova/instances`` (mounted somewhere) are copied into the live
node's.

Rules:

* nothing is ever overwritten: a file is written under a temporary name in
  the destination directory, verified, and then given its final name with
  ``link(2)``, which fails instead of replacing an existing name;
* an existing destination file with the same content (SHA-256) is "already
  there"; with other content it is a *conflict*: reported, left alone;
* ownership, mode and times are preserved; links are copied as links;
* every copied file is read back and its SHA-256 compared with the source;
* sparse files stay sparse (zero blocks are skipped, not written);
* ``dry_run`` plans without writing anything.
"""

import dataclasses
import hashlib
import os
import re
import stat

from osc_nodeops import errors
from osc_nodeops import safefile
from osc_nodeops.ops import runtime
from osc_nodeops.privileged import files as priv
from osc_nodeops.privileged import proc

COLUMNS = ('Entry', 'Files', 'Bytes', 'Result', 'Message')

PLANNED = 'planned'
COPIED = 'copied'
PRESENT = 'already there'
CONFLICT = 'conflict'
FAILED = 'failed'
SKIPPED = 'skipped'

_UUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                   r'[0-9a-f]{12}')
_CHUNK = 1 << 20


class CopyError(errors.Refused):
    """Bad input; one line, nothing changed."""


class CopyUsageError(errors.UsageError, CopyError):
    """``--from``/``--to`` that do not go together: exit 2, judged before
    anything is read or written."""


@dataclasses.dataclass
class EntryResult(object):
    entry: str
    files: int = 0
    bytes: int = 0
    result: str = PLANNED
    conflicts: list = dataclasses.field(default_factory=list)
    failures: list = dataclasses.field(default_factory=list)
    present: int = 0
    repaired: list = dataclasses.field(default_factory=list)

    def message(self):
        parts = []
        if self.repaired:
            parts.append('owner and mode of %d director%s left by an '
                         'interrupted run repaired' % (
                             len(self.repaired),
                             'y' if len(self.repaired) == 1 else 'ies'))
        if self.present:
            parts.append('%d file(s) already there, identical'
                         % self.present)
        if self.conflicts:
            parts.append('conflict (kept the existing file): %s'
                         % ', '.join(self.conflicts[:5]) +
                         (' ...' if len(self.conflicts) > 5 else ''))
        if self.failures:
            parts.append('; '.join(self.failures[:3]))
        return '; '.join(parts)

    def row(self):
        return (self.entry, self.files, self.bytes, self.result,
                self.message())


def is_instance_entry(name):
    return name == '_base' or name.startswith('instance-') or \
        bool(_UUID.fullmatch(name))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def _validate(src_root, dst_root):
    for label, path in (('--from', src_root), ('--to', dst_root)):
        if not os.path.isdir(path):
            raise CopyUsageError('%s %s is not a directory' % (label,
                                                               path))
    a, b = os.path.realpath(src_root), os.path.realpath(dst_root)
    if a == b or os.path.commonpath([a, b]) in (a, b):
        raise CopyUsageError('--from and --to must be separate directory '
                             'trees '
                        '(%s, %s)' % (src_root, dst_root))


@dataclasses.dataclass
class Report(runtime.Report):
    rows: list  # EntryResult

    @property
    def ok(self):
        return not any(r.result in (CONFLICT, FAILED) for r in self.rows)


def run(src_root, dst_root, dry_run=True, only=None, events=None):
    """``compute node copy-instances``: checks, then :func:`copy_instances`.

    Returns a :class:`Report`: its rows, not ``ok`` when something was not
    done (a conflict or a failure)."""
    _validate(src_root, dst_root)  # usage first: exit 2
    if not dry_run and not proc.is_root():
        raise CopyError('copy-instances must run as root (it keeps file '
                        'ownership)')
    results = copy_instances(src_root, dst_root, dry_run=dry_run, only=only,
                             events=events)
    if dry_run and events:
        events('dry run: nothing was written; run again with --execute to '
               'copy')
    return Report(results)


def copy_instances(src_root, dst_root, dry_run=True, only=None,
                   events=None):
    """Copy instance directories and ``_base/``; return EntryResult rows.

    ``only``: names of entries to copy (default: every ``instance-*``,
    UUID-named directory and ``_base``).  Other entries are reported as
    skipped.

    The destination is walked by directory descriptor (``--to`` through
    ``safefile.open_dir``, every directory below with
    ``O_DIRECTORY|O_NOFOLLOW`` and every ``mkdir``, ``open``, ``link``,
    ``chown`` with ``dir_fd=``): the owner of ``--to`` who swaps a fresh
    instance directory for a link makes that entry fail, never root write
    through the link.
    """
    events = events or (lambda msg: None)
    _validate(src_root, dst_root)
    try:
        names = sorted(os.listdir(src_root))
    except OSError as exc:
        raise CopyError('cannot read --from %s: %s' % (
            src_root, exc.strerror or exc))
    if only:
        missing = [n for n in only if n not in names]
        if missing:
            raise CopyError('not in %s: %s' % (src_root, ', '.join(missing)))
    try:
        dst_fd = safefile.open_dir(dst_root, '--to %s' % dst_root)
    except OSError as exc:
        raise CopyError('cannot open --to %s: %s' % (
            dst_root, exc.strerror or exc))
    try:
        return _copy_entries(src_root, dst_fd, names, only, dry_run, events)
    finally:
        os.close(dst_fd)


def _copy_entries(src_root, dst_fd, names, only, dry_run, events):
    results = []
    for name in names:
        src = os.path.join(src_root, name)
        if only and name not in only:
            continue
        if not (is_instance_entry(name) and os.path.isdir(src) and
                not os.path.islink(src)):
            results.append(EntryResult(name, result=SKIPPED,
                                       failures=['not an instance directory '
                                                 'or _base']))
            continue
        res = EntryResult(name)
        _copy_tree(src, dst_fd, name, name, res, dry_run)
        _conclude(res, dry_run)
        events('%s: %s (%d files, %d bytes)' % (name, res.result, res.files,
                                                res.bytes))
        results.append(res)
    return results


def _conclude(res, dry_run):
    if res.failures:
        res.result = FAILED
    elif res.conflicts:
        res.result = CONFLICT
    elif dry_run:
        res.result = PLANNED
    elif res.files == 0 and res.present:
        res.result = PRESENT
    else:
        res.result = COPIED


def _copy_tree(src, dfd, name, rel, res, dry_run):
    """Copy ``src`` to the entry ``name`` of the directory ``dfd`` (None:
    a directory that does not exist yet, in a dry run).  Every OSError (EIO
    from a failing disk, ELOOP from a swapped-in link) becomes a failure row
    of this entry, never the end of the run."""
    try:
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            _copy_dir(src, dfd, name, rel, st, res, dry_run)
        else:
            _copy_file(src, dfd, name, rel, st, res, dry_run)
    except OSError as exc:
        res.failures.append('%s: %s' % (rel, exc.strerror or exc))


def _lstat(dfd, name):
    if dfd is None:
        return None
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _left_by_a_crash(dst_st, st):
    """A directory we made (root:0700) whose owner and mode a killed run
    never set; nova would get EACCES in it."""
    return dst_st.st_uid == 0 and dst_st.st_gid == 0 and \
        stat.S_IMODE(dst_st.st_mode) == 0o700 and \
        (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (0, 0, 0o700)


def _open_child(dfd, name, fresh):
    """The directory ``name`` of ``dfd``, never through a link; one we just
    made must still be ours (owner, 0700): a directory swapped in for it
    is refused."""
    fd = priv.open_dir_at(dfd, name)
    if fresh:
        got = os.fstat(fd)
        if got.st_uid != os.geteuid() or stat.S_IMODE(got.st_mode) != 0o700:
            os.close(fd)
            raise CopyError('the directory made was replaced meanwhile')
    return fd


def _copy_dir(src, dfd, name, rel, st, res, dry_run):
    dst_st = _lstat(dfd, name)
    if dst_st is not None and not stat.S_ISDIR(dst_st.st_mode):
        # A file, or a symbolic link (to a directory, too): not followed.
        res.conflicts.append(rel)
        return
    fix = dst_st is None or _left_by_a_crash(dst_st, st)
    child = None
    try:
        if dst_st is None and not dry_run:
            priv.make_dir(name, dir_fd=dfd)
        if not (dst_st is None and dry_run):
            child = _open_child(dfd, name, fresh=dst_st is None)
    except CopyError as exc:
        res.failures.append('%s: %s' % (rel, exc))
        return
    try:
        for n in sorted(os.listdir(src)):
            _copy_tree(os.path.join(src, n), child, n, rel + '/' + n, res,
                       dry_run)
    finally:
        # Also when a child failed or we are interrupted: a directory
        # left root:0700 locks nova out.
        if child is not None:
            try:
                if fix and not dry_run:
                    priv.set_fd_owner_mode(child, st.st_uid, st.st_gid,
                                           stat.S_IMODE(st.st_mode),
                                           (st.st_atime_ns, st.st_mtime_ns))
                    if dst_st is not None:
                        res.repaired.append(rel)
            finally:
                os.close(child)


def _copy_file(src, dfd, name, rel, st, res, dry_run):
    if _lstat(dfd, name) is not None:
        if _same(src, dfd, name, st):
            res.present += 1
        else:
            res.conflicts.append(rel)
        return
    if not (stat.S_ISLNK(st.st_mode) or stat.S_ISREG(st.st_mode)):
        res.failures.append('%s: special file, not copied' % rel)
        return
    res.files += 1
    res.bytes += st.st_size if stat.S_ISREG(st.st_mode) else 0
    if dry_run:
        return
    try:
        _copy_one(src, dfd, name, st)
    except CopyError as exc:
        res.failures.append('%s: %s' % (rel, exc))
    except FileExistsError:
        # Appeared between our check and the link: not ours.
        res.files -= 1
        res.conflicts.append(rel)


def _same(src, dfd, name, st):
    dst_st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode) or stat.S_ISLNK(dst_st.st_mode):
        return stat.S_ISLNK(st.st_mode) and stat.S_ISLNK(dst_st.st_mode) \
            and os.readlink(src) == os.readlink(name, dir_fd=dfd)
    if not stat.S_ISREG(dst_st.st_mode) or dst_st.st_size != st.st_size:
        return False
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK |
                 os.O_CLOEXEC, dir_fd=dfd)
    try:
        return sha256_file(src) == priv.sha256_fd(fd)
    finally:
        os.close(fd)


def _copy_one(src, dfd, name, st):
    tmp = '.%s.nodeops-partial.%d' % (name, os.getpid())
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), tmp, dir_fd=dfd)
        try:
            priv.chown(tmp, st.st_uid, st.st_gid, dir_fd=dfd)
            priv.link_no_replace(tmp, name, dir_fd=dfd)
        finally:
            os.unlink(tmp, dir_fd=dfd)
        return
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                 os.O_CLOEXEC, 0o600, dir_fd=dfd)
    try:
        try:
            digest = priv.copy_sparse(src, fd)
            os.fsync(fd)
            if priv.sha256_fd(fd) != digest:
                raise CopyError('checksum of the copy differs from the '
                                'source')
            # Through the descriptor: the name could be swapped meanwhile.
            priv.set_fd_owner_mode(fd, st.st_uid, st.st_gid,
                                   stat.S_IMODE(st.st_mode),
                                   (st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fd)
        priv.link_no_replace(tmp, name, dir_fd=dfd)
    finally:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except FileNotFoundError:
            pass
