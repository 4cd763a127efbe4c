"""Issue 21.6: tenant and guest strings never reach a terminal raw.

A server named ``ESC]0;pwned BEL ESC[2J`` (set the window title, clear the
screen) or carrying a bidi override reaches the table, the event lines on
stderr and the live block escaped, visibly (``\\x1b``); ``-f json`` and
``-f yaml`` keep it exact."""

import io
import json
from unittest import mock

import testtools

from osc_nodeops.ops import engine
from osc_nodeops.ops import events
from osc_nodeops.ops import runtime
from osc_nodeops.v1 import base
from tests.unit import fakes

EVIL = '\x1b]0;pwned\x07\x1b[2Jvm\u202eexe.txt\x9b31m\rOK'


class _Cmd(base.NodeOpsLister):

    def take_action(self, parsed_args):
        self.events('moved %s' % EVIL)
        return ('Name', 'Message'), [(EVIL, 'fault: %s' % EVIL)]


class _Show(base.NodeOpsShowOne):

    def take_action(self, parsed_args):
        return ('Name',), (EVIL,)


def _run(cls, *args):
    app = mock.Mock()
    app.stderr = io.StringIO()
    app.stdout = io.StringIO()
    cmd = cls(app, None, cmd_name='compute node test')
    rc = cmd.run(cmd.get_parser('x').parse_args(list(args)))
    return rc, app.stdout.getvalue(), app.stderr.getvalue()


class TestPrintable(testtools.TestCase):

    def assertClean(self, text):
        for bad in ('\x1b', '\x07', '\x9b', '\u202e', '\r'):
            self.assertNotIn(bad, text)

    def test_table_value_csv_rows_and_stderr_escaped(self):
        for fmt in ('table', 'value', 'csv'):
            rc, out, err = _run(_Cmd, '-f', fmt)
            self.assertEqual(0, rc)
            self.assertClean(out)
            self.assertClean(err)
            if fmt != 'csv':  # csv doubles the backslashes
                self.assertIn('\\x1b]0;pwned\\x07\\x1b[2J', out)
            self.assertIn('\\x1b', err)

    def test_show_one_escaped(self):
        for fmt in ('table', 'value', 'shell'):
            out = _run(_Show, '-f', fmt)[1]
            self.assertClean(out)

    def test_json_and_yaml_keep_it_exact(self):
        out = _run(_Cmd, '-f', 'json')[1]
        self.assertEqual(EVIL, json.loads(out)[0]['Name'])
        out = _run(_Show, '-f', 'json')[1]
        self.assertEqual(EVIL, json.loads(out)['Name'])

    def test_event_sink_lines_and_live_block(self):
        item = engine.PlanItem(fakes.server(name=EVIL, host='c01'))
        stream = io.StringIO()
        sink = events.Sink(stream, live=False)
        sink(runtime.Event('failed', 'fault: %s' % EVIL, item, host='c01'))
        self.assertClean(stream.getvalue())
        stream = io.StringIO()
        block = events.LiveBlock(stream, events.Progress())
        block.say('server %s' % EVIL)
        self.assertClean(stream.getvalue())
        progress = events.Progress()
        progress.in_flight['x'] = EVIL
        self.assertClean(str(block.__class__.__rich__(
            mock.Mock(progress=progress, _text=str))))
