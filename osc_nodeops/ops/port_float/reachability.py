"""S14: can this machine open a TCP port on each address of a float
port."""

import concurrent.futures
import errno
import ipaddress
import socket
import time

from osc_nodeops import errors
from osc_nodeops.ops.port_float.base import find_float_port
from osc_nodeops.ops.port_float.base import port_addresses


# -- check ------------------------------------------------------------------

def probe(address, tcp_port, timeout, clock=time.monotonic):
    """Open a TCP connection to ADDRESS:TCP_PORT; (result, detail, seconds).

    result is ``open``, ``refused``, ``timeout`` or ``unreachable``.
    """
    family = (socket.AF_INET6 if ipaddress.ip_address(address).version == 6
              else socket.AF_INET)
    start = clock()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, tcp_port))
        result, detail = 'open', 'connected'
    except socket.timeout:
        result, detail = 'timeout', 'no answer within %ss' % timeout
    except ConnectionRefusedError:
        result, detail = 'refused', 'connection refused'
    except OSError as exc:
        result = 'unreachable'
        detail = exc.strerror or errno.errorcode.get(exc.errno or 0,
                                                     str(exc))
    finally:
        sock.close()
    return result, detail, round(clock() - start, 3)


def check(conn, port_ref, tcp_port=22, timeout=2.0, probe_fn=None):
    """S14: can this machine open TCP_PORT on each address of the port."""
    if not 0 < tcp_port < 65536:
        raise errors.UsageError('TCP port %s is not in 1-65535' % tcp_port)
    if timeout <= 0:
        raise errors.UsageError('timeout must be positive')
    probe_fn = probe_fn or probe
    port = find_float_port(conn, port_ref)
    addresses = port_addresses(port)
    if not addresses:
        raise errors.Refused('port %s has no addresses' % port.id)
    rows = []
    with concurrent.futures.ThreadPoolExecutor(len(addresses)) as pool:
        futures = [pool.submit(probe_fn, a, tcp_port, timeout)
                   for a in addresses]
        for address, fut in zip(addresses, futures):
            result, detail, seconds = fut.result()
            rows.append({'port_id': port.id, 'address': address,
                         'ip_version': ipaddress.ip_address(address).version,
                         'tcp_port': tcp_port, 'result': result,
                         'detail': detail, 'seconds': seconds})
    return rows
