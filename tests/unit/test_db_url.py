"""DB URLs and config files: parsing, and passwords kept out of text."""

import os
import tempfile
from unittest import mock

import testtools

from osc_nodeops.db import errors
from osc_nodeops.db import url as url_mod
from osc_nodeops.db import volumes
from tests.unit import fakedb

SECRET = 'p@ss:w/rd%'
QUOTED = 'p%40ss%3Aw%2Frd%25'


class TestURL(testtools.TestCase):

    def test_parse(self):
        u = url_mod.DBURL.parse(
            'mysql+pymysql://nova:%s@10.0.0.5:3307/nova_cell1?charset=utf8'
            % QUOTED)
        self.assertEqual(('nova', SECRET, '10.0.0.5', 3307, 'nova_cell1',
                          'utf8'),
                         (u.user, u.password, u.host, u.port, u.database,
                          u.charset))

    def test_text_never_shows_password(self):
        u = url_mod.DBURL.parse('mysql+pymysql://nova:%s@db/nova' % QUOTED)
        for text in (str(u), repr(u), u.redacted(), u.where(),
                     '%s' % (u,)):
            self.assertNotIn(SECRET, text)
            self.assertNotIn(QUOTED, text)
        self.assertIn('***', str(u))

    def test_bad_urls_do_not_echo_them(self):
        for bad in ('postgresql://u:%s@h/db' % QUOTED,
                    'mysql+pymysql://u:%s@h/' % QUOTED,
                    'mysql+pymysql://u:%s@h:notaport/db' % QUOTED,
                    'mysql+pymysql://u:%s@h/db`; drop' % QUOTED, ''):
            exc = self.assertRaises(errors.DBConfigError,
                                    url_mod.DBURL.parse, bad)
            self.assertNotIn(QUOTED, str(exc))
            self.assertNotIn(SECRET, str(exc))
            self.assertNotIn('\n', str(exc))

    def test_unquoted_password_parts_are_never_echoed(self):
        # a password holding "/", "?" or "#" unquoted spills into the path,
        # query or fragment: the message must not quote any of them
        for pw in ('pa/ss-TopS3cret', 'TopS3cret/x', 'pa?TopS3cret',
                   'pa#TopS3cret', 'Top/S3cret?x#y'):
            exc = self.assertRaises(
                errors.DBConfigError, url_mod.DBURL.parse,
                'mysql+pymysql://nova:%s@db/nova_cell1' % pw)
            for part in ('TopS3cret', 'S3cret', 'pa', 'ss-'):
                self.assertNotIn(part, str(exc), (pw, str(exc)))

    def test_query_parameters_honoured_or_refused(self):
        u = url_mod.DBURL.parse(
            'mysql+pymysql://nova:x@db/nova?charset=utf8&ssl_ca=/etc/ca.pem'
            '&ssl_cert=/c.pem&ssl_key=/k.pem&ssl_check_hostname=false'
            '&read_default_file=/etc/my.cnf&plugin=dbcounter')
        fake = mock.Mock()
        u.connect(pymysql=fake)
        kwargs = fake.connect.call_args.kwargs
        self.assertEqual({'ca': '/etc/ca.pem', 'cert': '/c.pem',
                          'key': '/k.pem', 'check_hostname': False},
                         kwargs['ssl'])
        self.assertEqual(('utf8', '/etc/my.cnf'),
                         (kwargs['charset'], kwargs['read_default_file']))
        self.assertNotIn('plugin', kwargs)
        # dropping an unknown one (sslmode, ssl_mode...) could mean no TLS
        for query in ('sslmode=require', 'ssl_mode=REQUIRED', 'foo=1',
                      'ssl_check_hostname=perhaps'):
            exc = self.assertRaises(
                errors.DBConfigError, url_mod.DBURL.parse,
                'mysql+pymysql://nova:TopS3cret@db/nova?%s' % query)
            self.assertNotIn('TopS3cret', str(exc))

    def test_redact_free_text(self):
        for text, want in (
                ('--nova-db mysql+pymysql://nova:p@ss@db/nova -v',
                 '--nova-db mysql+pymysql://nova:***@db/nova -v'),
                ('a=mysql://u:x:y@h/c?charset=utf8 b=mysql://h:3306/db',
                 'a=mysql://u:***@h/c?charset=utf8 b=mysql://h:3306/db'),
                ('mysql://n:pa ss@db/nova', 'mysql://n:***@db/nova'),
                ('mysql://n:pa/ss@db/nova', 'mysql://n:***@db/nova'),
                ('mysql://nova@db/nova', 'mysql://nova@db/nova')):
            self.assertEqual(want, url_mod.redact(text))

    def test_secret_url_repr_hides_a_password_holding_at(self):
        # it used to stop at the first "@": nova:***@ss@db
        text = 'mysql+pymysql://nova:p@ss@db/nova'
        value = url_mod.SecretURL(text)
        self.assertEqual(repr('mysql+pymysql://nova:***@db/nova'),
                         repr(value))
        self.assertEqual(text, str(value))

    def test_unix_socket(self):
        u = url_mod.DBURL.parse(
            'mysql+pymysql://root:x@/nova?unix_socket=/run/mysqld.sock')
        self.assertEqual('/run/mysqld.sock', u.unix_socket)
        self.assertEqual('/run/mysqld.sock/nova', u.where())

    def test_same_server(self):
        a = url_mod.DBURL.parse('mysql+pymysql://nova:x@db:3306/nova')
        b = url_mod.DBURL.parse('mysql+pymysql://nova:x@db/neutron')
        c = url_mod.DBURL.parse('mysql+pymysql://neutron:y@db/neutron')
        d = url_mod.DBURL.parse('mysql+pymysql://nova:x@db2/neutron')
        self.assertTrue(a.same_server(b))
        self.assertFalse(a.same_server(c))
        self.assertFalse(a.same_server(d))

    def test_connect_error_scrubbed(self):
        u = url_mod.DBURL.parse('mysql+pymysql://nova:%s@db/nova' % QUOTED)
        fake = mock.Mock()
        fake.connect.side_effect = RuntimeError(
            'auth failed for password %s' % SECRET)
        exc = self.assertRaises(errors.DBError, u.connect, pymysql=fake)
        self.assertNotIn(SECRET, str(exc))
        kwargs = fake.connect.call_args.kwargs
        self.assertEqual(SECRET, kwargs['password'])
        self.assertFalse(kwargs['autocommit'])

    def test_from_conf(self):
        d = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__('shutil').rmtree(d))
        path = os.path.join(d, 'nova.conf')
        with open(path, 'w') as f:
            f.write('[DEFAULT]\nhost = c01\n[database]\nconnection = '
                    'mysql+pymysql://nova:%s@127.0.0.1/nova_cell1\n' % QUOTED)
        u = url_mod.from_conf(path)
        self.assertEqual(('nova_cell1', SECRET), (u.database, u.password))
        self.assertEqual(u.database,
                         url_mod.resolve(None, path).database)
        # the URL on the command line wins
        self.assertEqual('other', url_mod.resolve(
            'mysql+pymysql://a:b@h/other', path).database)

    def test_from_conf_errors(self):
        d = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__('shutil').rmtree(d))
        path = os.path.join(d, 'neutron.conf')
        with open(path, 'w') as f:
            f.write('[DEFAULT]\ndebug = true\n')
        exc = self.assertRaises(errors.DBConfigError, url_mod.from_conf,
                                path)
        self.assertIn('[database] connection', str(exc))
        exc = self.assertRaises(errors.DBConfigError, url_mod.from_conf,
                                os.path.join(d, 'missing.conf'))
        self.assertIn('missing.conf', str(exc))
        self.assertRaises(errors.DBConfigError, url_mod.resolve, None, None)


class TestVolumePairsFromDB(testtools.TestCase):

    def populate(self, nova, cinder):
        nova.data['instances'] += [
            {'uuid': 'i1', 'host': 'c01', 'deleted': 0, 'name': 'vm1'},
            {'uuid': 'i2', 'host': 'c01', 'deleted': 0, 'name': 'vm2'},
            {'uuid': 'i3', 'host': 'c02', 'deleted': 0, 'name': 'vm3'},
        ]
        cinder.data['volumes'] += [
            {'id': 'v1', 'status': 'in-use', 'display_name': 'data1',
             'deleted': False},
            {'id': 'v2', 'status': 'in-use', 'display_name': 'data2',
             'deleted': False},
            {'id': 'v3', 'status': 'in-use', 'display_name': 'data3',
             'deleted': False},
        ]
        cinder.data['volume_attachment'] += [
            {'instance_uuid': 'i1', 'volume_id': 'v1', 'mountpoint':
             '/dev/vdb', 'attach_status': 'attached', 'deleted': False,
             'attached_host': 'c01'},
            {'instance_uuid': 'i1', 'volume_id': 'v2', 'mountpoint':
             '/dev/vdc', 'attach_status': 'attached', 'deleted': False,
             'attached_host': 'c01'},
            # an old, deleted attachment of i2: not listed
            {'instance_uuid': 'i2', 'volume_id': 'v3', 'mountpoint':
             '/dev/vdb', 'attach_status': 'detached', 'deleted': True,
             'attached_host': 'c01'},
            {'instance_uuid': 'i3', 'volume_id': 'v3', 'mountpoint':
             '/dev/vdb', 'attach_status': 'attached', 'deleted': False,
             'attached_host': 'c02'},
        ]

    def check(self, pairs):
        self.assertEqual(
            [('i1', 'vm1', 'v1', '/dev/vdb', 'in-use', 'attached'),
             ('i1', 'vm1', 'v2', '/dev/vdc', 'in-use', 'attached')],
            [p[:6] for p in pairs])

    def test_one_server_one_join(self):
        db = fakedb.Server()
        self.populate(db, db)
        nova = url_mod.DBURL.parse('mysql+pymysql://r:x@db/nova_cell1')
        cinder = url_mod.DBURL.parse('mysql+pymysql://r:x@db/cinder')
        self.check(volumes.list_pairs(nova, cinder, 'c01',
                                      connector=db.connect))
        sqls = [s for s, _ in db.statements]
        self.assertEqual(1, len(sqls))
        self.assertIn('`cinder`.`volume_attachment`', sqls[0])
        self.assertEqual(('c01',), db.statements[0][1])

    def test_two_servers(self):
        ndb, cdb = fakedb.Server(), fakedb.Server()
        self.populate(ndb, cdb)
        nova = url_mod.DBURL.parse('mysql+pymysql://r:x@db1/nova_cell1')
        cinder = url_mod.DBURL.parse('mysql+pymysql://c:y@db2/cinder')
        pairs = volumes.list_pairs(
            nova, cinder, 'c01',
            connector=lambda u: (ndb if u.host == 'db1' else cdb).connect())
        self.check(pairs)
        self.assertEqual(1, len(ndb.statements))
        self.assertEqual(1, len(cdb.statements))


class TestStatementTimeout(testtools.TestCase):
    """A server that accepts the connection and then never answers (a
    half-open connection) makes PyMySQL raise, not hang."""

    def test_silent_server_times_out(self):
        import socket
        import threading
        import time
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(('127.0.0.1', 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        u = url_mod.DBURL.parse('mysql+pymysql://nova:x@127.0.0.1:%d/nova'
                                % port)
        outcome = {}

        def connect():
            started = time.monotonic()
            try:
                u.connect(connect_timeout=2)
            except errors.DBError as exc:
                outcome['error'] = str(exc)
            outcome['seconds'] = time.monotonic() - started
        with mock.patch.object(url_mod, 'STATEMENT_TIMEOUT', 0.5):
            t = threading.Thread(target=connect, daemon=True)
            t.start()
            t.join(15)
        self.assertFalse(t.is_alive(), 'connect hung')
        self.assertIn('cannot connect', outcome['error'])
        self.assertLess(outcome['seconds'], 10)

    def test_read_and_write_timeouts_passed(self):
        fake = mock.Mock()
        u = url_mod.DBURL.parse('mysql+pymysql://nova:x@db/nova')
        u.connect(pymysql=fake)
        kw = fake.connect.call_args.kwargs
        self.assertEqual(url_mod.STATEMENT_TIMEOUT, kw['read_timeout'])
        self.assertEqual(url_mod.STATEMENT_TIMEOUT, kw['write_timeout'])
        u.connect(pymysql=fake, timeout=5)
        self.assertEqual(5, fake.connect.call_args.kwargs['read_timeout'])
