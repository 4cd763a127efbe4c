"""The minicloud's fault proxy: an API path with trouble on it.

Run by ``minicloud up`` as service ``fault-proxy``::

    python fault_proxy.py STATE_DIR NAME:LISTEN_PORT:BACKEND_PORT...

Listens on 127.0.0.1:LISTEN_PORT for each service NAME and forwards every
HTTP request to 127.0.0.1:BACKEND_PORT, unless the control file
``STATE_DIR/faults.json`` (written by ``minicloud faults set``; re-read when
it changes) says to answer it otherwise.  Per service::

    {"nova": {"503": 0.2, "502": 0.0, "reset": 0.05, "reset-after": 0.0,
              "hang": 0.0, "delay": 0.5}}

``503``/``502``: that share of requests is answered with that status
without reaching the service; ``reset``: the connection is reset (TCP RST)
before the request is forwarded; ``reset-after``: the request is forwarded
and done, then the connection is reset instead of answering (the caller
never learns the outcome); ``hang``: the request is held without an answer
until the client gives up (at most an hour); ``delay``: seconds added to
every request before it is forwarded.  One random draw per request decides
among the shares.  ``max-streak``: at most that many faults in a row on
one request (service, method and path without the query: a call and its
retries), the next one is forwarded, so a caller that tries more times
than that always gets through (random faults alone would, now and then,
strike every try of a call).

Every injected fault is one line of ``STATE_DIR/logs/faults.log``::

    2026-12-01T22:10:03.123 nova 503 GET /v2.1/servers/detail

and every request one line of ``logs/fault-proxy-access.log`` (service,
method, path, status or fault, milliseconds).  Standard library only.
"""

import http.client
import http.server
import json
import os
import random
import select
import socket
import socketserver
import struct
import sys
import threading
import time

STATE = None
ROUTES = {}          # listen port -> (name, backend port)
_lock = threading.Lock()
_control = {'mtime': None, 'doc': {}}
_streaks: dict = {}  # (service, method, path) -> faults in a row on it
_logs = {}

FRACTIONS = ('503', '502', 'reset', 'reset-after', 'hang')
HOP_HEADERS = {'connection', 'keep-alive', 'proxy-connection',
               'transfer-encoding', 'te', 'trailer', 'upgrade',
               'content-length'}


def control():
    path = os.path.join(STATE, 'faults.json')
    try:
        st = os.stat(path)
    except OSError:
        return {}
    # ``minicloud faults`` renames a new file in place: a new inode even
    # when two changes fall within one tick of the file system's clock.
    mtime = (st.st_mtime_ns, st.st_ino, st.st_size)
    with _lock:
        if mtime != _control['mtime']:
            try:
                with open(path) as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                doc = {}
            _control['mtime'], _control['doc'] = mtime, doc
        return _control['doc']


def write_log(name, line):
    with _lock:
        f = _logs.get(name)
        if f is None:
            f = _logs[name] = open(os.path.join(STATE, 'logs', name), 'a')
        f.write(line + '\n')
        f.flush()


def now():
    t = time.time()
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t)) + (
        '.%03d' % int((t % 1) * 1000))


def choose(settings):
    """The fault for one request: None or one of FRACTIONS."""
    r = random.random()
    acc = 0.0
    for k in FRACTIONS:
        try:
            acc += float(settings.get(k, 0) or 0)
        except (TypeError, ValueError):
            continue
        if r < acc:
            return k
    return None


def bounded(fault, settings, key):
    """FAULT, or None when ``max-streak`` faults in a row struck KEY."""
    try:
        most = int(settings.get('max-streak') or 0)
    except (TypeError, ValueError):
        most = 0
    with _lock:
        run = _streaks.get(key, 0)
        if fault and most and run >= most:
            fault = None
        _streaks[key] = run + 1 if fault else 0
    return fault


def reset(sock):
    """Close with RST, not FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack('ii', 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'minicloud-fault-proxy'

    def log_message(self, fmt, *args):   # our own logs instead
        pass

    def _body(self):
        if 'chunked' in (self.headers.get('Transfer-Encoding') or '').lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b';')[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b''.join(chunks)
        n = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(n) if n else b''

    def _serve(self):
        t0 = time.time()
        port = self.server.server_address[1]
        name, backend = ROUTES[port]
        body = self._body()
        settings = control().get(name) or {}
        fault = bounded(choose(settings), settings,
                        (name, self.command, self.path.split('?')[0]))
        try:
            delay = min(600.0, max(0.0, float(settings.get('delay') or 0)))
        except (TypeError, ValueError):
            delay = 0.0
        what = '%s %s' % (self.command, self.path)
        if fault:
            write_log('faults.log', '%s %s %s %s' % (now(), name, fault,
                                                     what))
        if delay:
            time.sleep(delay)
        status = fault
        try:
            if fault in ('503', '502'):
                msg = json.dumps({'error': 'minicloud fault proxy: %s'
                                  % fault}).encode()
                self.send_response(int(fault))
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)
            elif fault == 'reset':
                self.close_connection = True
                reset(self.connection)
            elif fault == 'hang':
                self.close_connection = True
                self._hang()
            else:
                code = self._forward(backend, body, fault == 'reset-after')
                status = fault or str(code)
        finally:
            write_log('fault-proxy-access.log', '%s %s %s %s %d' % (
                now(), name, what, status,
                int((time.time() - t0) * 1000)))

    def _hang(self):
        # Hold the request: answer nothing until the client goes away.
        deadline = time.time() + 3600
        sock = self.connection
        while time.time() < deadline:
            r, _, _ = select.select([sock], [], [], 1.0)
            if r:
                try:
                    if not sock.recv(65536):
                        break
                except OSError:
                    break
        reset(sock)

    def _forward(self, backend, body, reset_after):
        conn = http.client.HTTPConnection('127.0.0.1', backend, timeout=600)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in HOP_HEADERS}
        if body or self.command in ('POST', 'PUT', 'PATCH'):
            headers['Content-Length'] = str(len(body))
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            msg = json.dumps({'error': 'minicloud fault proxy: backend: %s'
                              % e}).encode()
            self.send_response(502)
            self.send_header('Content-Length', str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return 'backend-error'
        finally:
            conn.close()
        if reset_after:
            self.close_connection = True
            reset(self.connection)
            return resp.status
        data = self._rewrite(data)
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() in HOP_HEADERS:
                continue
            if k.lower() == 'location':
                v = self._rewrite(v.encode()).decode()
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(data)
        return resp.status

    @staticmethod
    def _rewrite(data):
        # Links (version documents, glance's public_endpoint) name the
        # services' own ports: keep the client on the proxy.
        for port, (_, backend) in ROUTES.items():
            data = data.replace(b'127.0.0.1:%d' % backend,
                                b'127.0.0.1:%d' % port)
        return data

    def finish(self):
        try:
            super().finish()
        except OSError:   # the connection was reset on purpose
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve
    do_OPTIONS = _serve


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client that went away (or a reset we made) is no news.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def main(argv):
    global STATE
    STATE = argv[0]
    servers = []
    for spec in argv[1:]:
        name, port, backend = spec.split(':')
        ROUTES[int(port)] = (name, int(backend))
        servers.append(Server(('127.0.0.1', int(port)), Handler))
    threads = [threading.Thread(target=s.serve_forever, daemon=True)
               for s in servers]
    for t in threads:
        t.start()
    print('fault proxy: %s' % ' '.join(
        '%s 127.0.0.1:%d -> %d' % (n, p, b)
        for p, (n, b) in sorted(ROUTES.items())), flush=True)
    for t in threads:
        t.join()


if __name__ == '__main__':
    main(sys.argv[1:])
