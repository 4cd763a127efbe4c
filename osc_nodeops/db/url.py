"""Database URLs: parse, read from a service's config file, connect.

A URL is what oslo.db takes (``mysql+pymysql://user:pass@host:3306/nova``).
The password is kept out of every string this module makes: ``str()`` and
``repr()`` of a :class:`DBURL` show ``***`` in its place, and
:func:`scrub` removes it from any message before it is raised or logged.
"""

import configparser
import dataclasses
import importlib
import re
import urllib.parse

from osc_nodeops.db import errors

# Seconds each read and each write of a statement may take on the socket.
STATEMENT_TIMEOUT = 60

_SCHEMES = ('mysql', 'mysql+pymysql', 'mariadb', 'mariadb+pymysql')
_SCHEMA_RE = re.compile(r'[A-Za-z0-9_$-]{1,64}')


# Query parameters honoured (as oslo.db/SQLAlchemy and PyMySQL take them);
# any other one is refused rather than dropped (``?ssl_ca=`` dropped would
# connect without TLS).
_SSL_PARAMS = {'ssl_ca': 'ca', 'ssl_capath': 'capath', 'ssl_cert': 'cert',
               'ssl_key': 'key', 'ssl_cipher': 'cipher',
               'ssl_check_hostname': 'check_hostname'}
_CONNECT_PARAMS = ('unix_socket', 'charset', 'read_default_file',
                   'read_default_group')
# SQLAlchemy engine plugins (devstack's ``plugin=dbcounter``): about the
# engine oslo.db builds, not the connection; nothing to honour here.
_IGNORED_PARAMS = ('plugin',)
_BOOLS = {'1': True, 'true': True, 'yes': True, 'on': True,
          '0': False, 'false': False, 'no': False, 'off': False}


def _query_options(parts, what):
    """The honoured query parameters as PyMySQL ``connect`` keywords."""
    try:
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True,
                                      strict_parsing=bool(parts.query))
    except ValueError:
        raise errors.DBConfigError('%s: its query string is malformed' %
                                   what)
    unknown = sorted(set(query) - set(_SSL_PARAMS) - set(_CONNECT_PARAMS)
                     - set(_IGNORED_PARAMS))
    if unknown:
        raise errors.DBConfigError(
            '%s: query parameter(s) %s not supported (honoured: %s); '
            'refusing to connect without them' % (
                what, ', '.join(unknown),
                ', '.join(_CONNECT_PARAMS + tuple(_SSL_PARAMS))))
    options = {k: v[-1] for k, v in query.items() if k in _CONNECT_PARAMS}
    ssl = {}
    for key, name in _SSL_PARAMS.items():
        if key in query:
            value = query[key][-1]
            if key == 'ssl_check_hostname':
                if value.lower() not in _BOOLS:
                    raise errors.DBConfigError(
                        '%s: ssl_check_hostname must be true or false' % what)
                value = _BOOLS[value.lower()]
            ssl[name] = value
    if ssl:
        options['ssl'] = ssl
    return options


class DBURL(object):
    """One parsed database URL; the password never appears in its text."""

    def __init__(self, scheme, user, password, host, port, database,
                 unix_socket=None, charset='utf8mb4', options=None):
        self.scheme = scheme
        self.user = user
        self._password = password
        self.host = host
        self.port = port
        self.database = database
        self.unix_socket = unix_socket
        self.charset = charset
        # other PyMySQL connect keywords from the query (ssl, defaults file)
        self.options = dict(options or {})

    # The password is reachable only by the code that connects.
    @property
    def password(self):
        return self._password

    @classmethod
    def parse(cls, url, what='database URL'):
        """Parse ``url``; a bad one raises :class:`errors.DBConfigError`.

        The message never quotes any part of the URL (the password may
        reach into any of them when it holds ``/``, ``?`` or ``#``).
        """
        if not url or not isinstance(url, str):
            raise errors.DBConfigError('%s is empty' % what)
        try:
            parts = urllib.parse.urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise errors.DBConfigError(
                '%s is not a valid URL (expected '
                'mysql+pymysql://USER:PASSWORD@HOST[:PORT]/DATABASE)' % what)
        if '@' in parts.path or '@' in parts.query or parts.fragment:
            raise errors.DBConfigError(
                '%s is not a valid URL: a password holding "/", "?" or "#" '
                'must be URL-quoted (%%2F, %%3F, %%23)' % what)
        if parts.scheme not in _SCHEMES:
            raise errors.DBConfigError(
                '%s: unsupported scheme (only MySQL/MariaDB through '
                'PyMySQL: mysql+pymysql://...)' % what)
        database = urllib.parse.unquote(parts.path.lstrip('/'))
        if not database:
            raise errors.DBConfigError('%s names no database' % what)
        if not _SCHEMA_RE.fullmatch(database):
            raise errors.DBConfigError(
                '%s: the database name has characters this tool does not '
                'accept (A-Z, a-z, 0-9, _, $, -)' % what)
        options = _query_options(parts, what)
        unix_socket = options.pop('unix_socket', None)
        charset = options.pop('charset', None) or 'utf8mb4'
        host = parts.hostname or ('localhost' if unix_socket else None)
        if not host:
            raise errors.DBConfigError('%s names no host' % what)
        user = urllib.parse.unquote(parts.username or '') or None
        password = parts.password
        if password is not None:
            password = urllib.parse.unquote(password)
        return cls(parts.scheme, user, password, host, port or 3306,
                   database, unix_socket=unix_socket, charset=charset,
                   options=options)

    def server_key(self):
        """What decides whether two URLs reach the same server as the same
        account: then one connection and one transaction can cover both
        schemas."""
        return (self.unix_socket or (self.host, self.port), self.user,
                self._password)

    def same_server(self, other):
        return self.server_key() == other.server_key()

    def where(self):
        """host:port/database, for journals and messages (no account)."""
        if self.unix_socket:
            return '%s/%s' % (self.unix_socket, self.database)
        return '%s:%s/%s' % (self.host, self.port, self.database)

    def redacted(self):
        auth = ''
        if self.user:
            auth = self.user + (':***' if self._password else '') + '@'
        return '%s://%s%s:%s/%s' % (self.scheme, auth, self.host, self.port,
                                    self.database)

    def secrets(self):
        """Strings that must never appear in output (password, raw and
        URL-quoted)."""
        if not self._password:
            return ()
        return (self._password, urllib.parse.quote(self._password, safe=''),
                urllib.parse.quote(self._password))

    def connect(self, connect_timeout=10, pymysql=None, timeout=None):
        """Open a PyMySQL connection with autocommit off.

        Every statement is bounded: ``timeout`` seconds (default
        ``STATEMENT_TIMEOUT``) for each read and each write on the socket,
        so a half-open connection raises instead of hanging.

        Errors are re-raised as :class:`errors.DBError` with the password
        scrubbed from the message.
        """
        if pymysql is None:  # imported here: only the DB path needs it
            pymysql = importlib.import_module('pymysql')
        kwargs = dict(host=self.host, port=self.port, user=self.user,
                      password=self._password or '', database=self.database,
                      charset=self.charset, autocommit=False,
                      connect_timeout=connect_timeout,
                      read_timeout=timeout or STATEMENT_TIMEOUT,
                      write_timeout=timeout or STATEMENT_TIMEOUT)
        if self.unix_socket:
            kwargs['unix_socket'] = self.unix_socket
        kwargs.update(self.options)
        try:
            return pymysql.connect(**kwargs)
        except Exception as exc:
            raise errors.DBError(scrub(
                'cannot connect to %s: %s' % (self.redacted(), exc),
                self.secrets())) from None

    __str__ = redacted

    def __repr__(self):
        return '<DBURL %s>' % self.redacted()


def scrub(message, secrets):
    """Return ``message`` with every secret replaced by ``***``."""
    message = str(message)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        message = message.replace(secret, '***')
    return message


def from_conf(path, what=None):
    """Read ``[database] connection`` from an oslo.config file.

    Raises :class:`errors.DBConfigError` naming the file when it cannot be
    read or has no such option.
    """
    what = what or path
    parser = configparser.RawConfigParser(strict=False,
                                          interpolation=None)
    try:
        with open(path) as f:
            parser.read_file(f)
    except OSError as exc:
        raise errors.DBConfigError('cannot read %s: %s' % (
            path, exc.strerror or exc))
    except configparser.Error:
        raise errors.DBConfigError('%s is not a valid config file' % path)
    try:
        url = parser.get('database', 'connection')
    except (configparser.NoSectionError, configparser.NoOptionError):
        raise errors.DBConfigError(
            '%s has no [database] connection option' % path)
    return DBURL.parse(url, what='[database] connection in %s' % path)


# scheme://user:password@ in free text.  The password runs to the last "@"
# before the next blank (it may hold "@" and, unquoted, "/"), or, when it
# holds a blank, to the last "@" before the next "/".
_URL_USER = r'([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)'
_URL_PASSWORD_RES = (re.compile(_URL_USER + r'\S*@'),
                     re.compile(_URL_USER + r'[^/]*@'))


def redact(text):
    """TEXT with the password of every URL in it replaced by ``***``
    (``mysql+pymysql://nova:p@ss@db/nova`` -> ``...//nova:***@db/nova``)."""
    text = str(text)
    for pattern in _URL_PASSWORD_RES:
        text = pattern.sub(r'\1***@', text)
    return text


class SecretURL(str):
    """A DB URL given on the command line that shows no password when
    repr()'d: osc-lib logs the parsed arguments (``run(Namespace(...))``)
    at debug level."""

    def __repr__(self):
        return repr(redact(self))


@dataclasses.dataclass
class Source(object):
    """Where a database URL comes from: given, or read from a config file."""

    url: str | None = None
    conf: str | None = None
    what: str = 'database'

    def resolve(self):
        return resolve(self.url, self.conf, what=self.what)


def resolve(url=None, conf=None, what='database'):
    """The URL given on the command line, else the one in ``conf``."""
    if url:
        return DBURL.parse(url, what='%s URL' % what)
    if conf:
        return from_conf(conf)
    raise errors.DBConfigError('no %s URL given and no config file to read '
                               'it from' % what)


def quote_schema(name):
    """Backtick-quote a schema name for a schema-qualified table name.

    Identifiers cannot be query parameters; the name comes from a URL we
    already validated, and is checked again here.
    """
    if not _SCHEMA_RE.fullmatch(name or ''):
        raise errors.DBConfigError('bad schema name %r' % name)
    return '`%s`' % name
