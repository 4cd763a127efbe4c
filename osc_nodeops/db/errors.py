"""Exceptions of the DB layer: every message is one line, no password."""


class DBError(Exception):
    """A database operation failed; nothing was committed unless said."""


class DBConfigError(DBError):
    """A URL or config file is missing or malformed (a usage error)."""


class DBConflict(DBError):
    """The rows are not in the state the operation expects; nothing done."""


class CompensationFailed(DBError):
    """The second commit failed and undoing the first failed too."""
