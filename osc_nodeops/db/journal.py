"""The journal of a DB move: the previous values, written before commit.

One JSON file per move.  It is created exclusively (an existing file is
never overwritten), written to a temporary name, fsync'ed and renamed, so a
crash leaves either the old or the new content, never half of it.  It holds
host names and row IDs, never a password.
"""

import datetime
import json
import os

from osc_nodeops.db import errors
from osc_nodeops import durable
from osc_nodeops import safefile

FORMAT = 'osc-nodeops/db-move/1'


# States in which a move stopped half-way (killed or interrupted between
# the journal and the commits): the operator must look, and may --undo.
UNFINISHED = {
    'prepared': 'written before the commit and never marked done: the move '
                'may or may not have been committed',
    'nova-committed': 'the nova rows were committed, the neutron rows not',
}


def default_directory():
    base = os.environ.get('XDG_STATE_HOME') or os.path.join(
        os.path.expanduser('~'), '.local', 'state')
    return os.path.join(base, 'osc-nodeops')


def default_path(old_host, directory=None):
    """A fresh journal path under ``$XDG_STATE_HOME/osc-nodeops``."""
    if directory is None:
        directory = default_directory()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime(
        '%Y%m%dT%H%M%S.%fZ')
    safe = ''.join(c if c.isalnum() or c in '-_.' else '_'
                   for c in old_host)[:64] or 'host'
    return os.path.join(directory, 'db-move-%s-%s.json' % (safe, stamp))


def create(path, data):
    """Write the first version of a journal; refuse an existing file."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.close(safefile.open_file(path, os.O_WRONLY | os.O_CREAT |
                                    os.O_EXCL, label='journal %s' % path))
    except safefile.Unsafe as exc:
        raise errors.UnsafeJournal(str(exc))
    except FileExistsError:
        raise errors.DBConfigError('journal %s already exists; refusing to '
                                   'overwrite it' % path)
    except OSError as exc:
        raise errors.DBError('cannot create journal %s: %s' % (
            path, exc.strerror or exc))
    write(path, data)


def write(path, data):
    """Replace the journal's content atomically and durably."""
    try:
        durable.write_json(path, dict(data, format=FORMAT))
    except safefile.Unsafe as exc:
        raise errors.UnsafeJournal('journal %s' % exc)
    except OSError as exc:
        raise errors.DBError('cannot write journal %s: %s' % (
            path, exc.strerror or exc))


def read(path):
    """Load and check a journal; a bad one raises DBConfigError.  It is
    read through ``safefile``: a link, or a file another user owns or can
    write, is not trusted (an --undo acts on what it says)."""
    try:
        data = json.loads(safefile.read_text(path,
                                             label='journal %s' % path))
    except safefile.Unsafe as exc:
        raise errors.UnsafeJournal(str(exc))
    except OSError as exc:
        raise errors.DBConfigError('cannot read journal %s: %s' % (
            path, exc.strerror or exc))
    except ValueError:
        raise errors.DBConfigError('journal %s is not valid JSON' % path)
    if not isinstance(data, dict) or data.get('format') != FORMAT:
        raise errors.DBConfigError('%s is not an osc-nodeops DB move '
                                   'journal' % path)
    for key in ('nova', 'neutron', 'old_host', 'new_host', 'state'):
        if key not in data:
            raise errors.DBConfigError('journal %s has no %r' % (path, key))
    return data


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def unfinished(directory=None):
    """The journals in DIRECTORY (default: the default one) whose move
    stopped half-way: ``[(path, state, old_host, new_host)]``."""
    directory = directory or default_directory()
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    found = []
    for name in names:
        if not (name.startswith('db-move-') and name.endswith('.json')):
            continue
        path = os.path.join(directory, name)
        try:
            doc = read(path)
        except errors.DBError:
            continue
        if doc['state'] in UNFINISHED:
            found.append((path, doc['state'], doc['old_host'],
                          doc['new_host']))
    return found
