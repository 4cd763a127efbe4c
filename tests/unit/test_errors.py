"""errors.one_line: the one exception-to-one-line helper, in each of the
styles its call sites had as helpers of their own (same text as before)."""

import testtools

from osc_nodeops import errors
from tests.unit import fakes


class TestOneLine(testtools.TestCase):

    def test_sdk_style_collapses_and_names_the_status(self):
        exc = fakes.http_error(503, 'service\n  unavailable')
        self.assertEqual('503: service unavailable', errors.one_line(exc))

    def test_sdk_style_403_says_the_admin_role(self):
        self.assertEqual('%s: nope' % errors.ADMIN_NEEDED,
                         errors.one_line(fakes.http_error(403, 'nope')))

    def test_status_style_403_is_only_its_status(self):
        # the cloud layer's text (engine, drain, lease, volumes): a 403 as
        # "403: ..." (no admin wording); a status-less ForbiddenException too
        self.assertEqual('403: nope', errors.one_line(
            fakes.http_error(403, 'nope'), style=errors.STATUS))

    def test_empty_message_is_the_type_name(self):
        self.assertEqual('ValueError', errors.one_line(ValueError()))

    def test_cut_with_and_without_marker(self):
        exc = RuntimeError('x' * 500)
        self.assertEqual('x' * 297 + '...', errors.one_line(exc))
        self.assertEqual('x' * 300, errors.one_line(exc, cut=''))
        self.assertEqual(500, len(errors.one_line(exc, None)))

    def test_plain_style_is_str_only(self):
        # the local steps' text (inspect-disk, stop-service): str(exc),
        # collapsed, cut at 300 with no marker; nothing for an empty one
        self.assertEqual('a b', errors.one_line(
            OSError('a\n b'), cut='', style=errors.PLAIN))
        self.assertEqual('', errors.one_line(
            RuntimeError(), cut='', style=errors.PLAIN))

    def test_named_style_puts_the_type_first(self):
        # the DB layer's text: pymysql's str() is a tuple
        exc = RuntimeError(2013, 'Lost connection')
        self.assertEqual("RuntimeError: (2013, 'Lost connection')",
                         errors.one_line(exc, None, style=errors.NAMED))
        self.assertEqual('RuntimeError',
                         errors.one_line(RuntimeError(), None,
                                         style=errors.NAMED))

    def test_a_text_is_collapsed(self):
        # a child's stderr (privileged/proc.py: cut at 400, no marker)
        self.assertEqual('mount: busy', errors.one_line(
            'mount:\n busy\n', limit=400, cut=''))
        self.assertEqual('', errors.one_line(None, limit=400, cut=''))
        self.assertEqual('e' * 400, errors.one_line('e' * 401, limit=400,
                                                    cut=''))
