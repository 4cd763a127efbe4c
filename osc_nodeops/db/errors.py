"""Exceptions of the DB layer: every message is one line, no password.

They belong to the one hierarchy of ``osc_nodeops.errors`` (exit 1): the
commands say them like any other refusal.
"""

from osc_nodeops import errors


class DBError(errors.NodeOpsError):
    """A database operation failed; nothing was committed unless said."""


class DBConfigError(DBError):
    """A URL, config file or journal is missing or malformed."""


class DBConflict(DBError, errors.Refused):
    """The rows are not in the state the operation expects; nothing done."""


class CompensationFailed(DBError):
    """The second commit failed and undoing the first failed too."""


class UnsafeJournal(DBConfigError, errors.UsageError):
    """A journal root must not trust or write: a link, a file of another
    user, group/world-writable (``osc_nodeops.safefile``); exit 2."""
