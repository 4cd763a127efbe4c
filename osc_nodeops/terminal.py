"""``printable()``: a string from a tenant or a guest, safe on a terminal.

Server names, metadata, fault messages and guest file names are untrusted:
an ANSI/OSC escape in them could clear the operator's screen, set the
window title, fake a green "OK", or hide text (``\\r``, bidi overrides).
Every string that reaches a terminal goes through :func:`printable`: C0
controls (but tab and newline), ESC, DEL, C1 controls and the bidi
embedding/override/isolate characters become visible escapes (``\\x1b``,
``\\u202e``); everything else is kept as it is.  Machine output (``-f json``,
``-f yaml``, the ``--events`` file) stays exact.  Standard library only.
"""

import re

_UNSAFE = re.compile('[\x00-\x08\x0b-\x1f\x7f-\x9f'
                     '\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]')


def _escape(match):
    code = ord(match.group())
    return '\\x%02x' % code if code < 0x100 else '\\u%04x' % code


def printable(value):
    """VALUE with terminal controls escaped; non-strings unchanged."""
    if not isinstance(value, str):
        return value
    return _UNSAFE.sub(_escape, value)
