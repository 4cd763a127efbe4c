"""Reusable neutron ports as floating public addresses (runbook S12-S16).

On provider networks without floating IPs an operator keeps an address by
keeping its port.  A "float port" is a neutron port carrying the tag
:data:`TAG`; every command here refuses ports without it, so nothing else is
ever touched.

Plain Python over an openstacksdk ``Connection``, in these modules (their
public names are re-exported here):

``base``
    the tag, a port's addresses and row, calls that may meet a transient
    fault, waiting, look-ups;
``inventory``
    :func:`create` (S12), :func:`list_ports`;
``attachment``
    :func:`attach` (S13), :func:`detach` (S15), :func:`move`, and nova's
    view of a port (:func:`nova_created`);
``recovery``
    :func:`recover` (S16);
``reachability``
    :func:`check` (S14), :func:`probe`.

* Bad input raises ``errors.UsageError``, a missing network, server or port
  ``errors.NotFound``, a refused request ``errors.Refused`` (one line,
  nothing changed).
* Something started but not finished raises ``errors.Incomplete`` with a
  one-line message saying what state things were left in.
* Progress goes to the ``events`` callback, one line (a str) at a time.

What nova does to ports (read in nova 34, checked on the minicloud):

* A port passed to nova (``server create --nic port-id=``, ``server add
  port``) is *preserved*: detaching it through nova, or deleting the server,
  unbinds it (device_id, device_owner, binding host and profile cleared) and
  removes nova's ``virtual_interfaces`` row.
* A port nova created itself (``--nic net-id=``, ``server add network``) is
  *deleted* by nova both on detach and on server deletion.  nova keeps that
  flag (``preserve_on_delete``) in its instance info cache, which no API
  shows or changes.  :func:`nova_created` infers it from the timestamps of
  the port and of the server's create/attach requests; :func:`detach`
  refuses (changing nothing) when nova may have created the port.
* Clearing device_id/owner/binding profile on the neutron side only (the
  guide's S15) leaves nova a phantom interface and a stale
  ``virtual_interfaces`` row: a later ``server add port`` elsewhere fails
  with HTTP 500.  So detach always goes through nova.
"""

from osc_nodeops.ops.port_float.attachment import attach  # noqa
from osc_nodeops.ops.port_float.attachment import detach  # noqa
from osc_nodeops.ops.port_float.attachment import move  # noqa
from osc_nodeops.ops.port_float.attachment import nova_created  # noqa
from osc_nodeops.ops.port_float.attachment import server_requests  # noqa
from osc_nodeops.ops.port_float.base import ACTIONS_MICROVERSION  # noqa
from osc_nodeops.ops.port_float.base import CALL_ATTEMPTS  # noqa
from osc_nodeops.ops.port_float.base import DEFAULT_MAX_ATTEMPTS  # noqa
from osc_nodeops.ops.port_float.base import DEFAULT_TIMEOUT  # noqa
from osc_nodeops.ops.port_float.base import describe  # noqa
from osc_nodeops.ops.port_float.base import find_float_port  # noqa
from osc_nodeops.ops.port_float.base import find_network  # noqa
from osc_nodeops.ops.port_float.base import find_server  # noqa
from osc_nodeops.ops.port_float.base import has_address  # noqa
from osc_nodeops.ops.port_float.base import is_ours  # noqa
from osc_nodeops.ops.port_float.base import parse_address  # noqa
from osc_nodeops.ops.port_float.base import port_addresses  # noqa
from osc_nodeops.ops.port_float.base import RECOVER_PREFIX  # noqa
from osc_nodeops.ops.port_float.base import resolve_fixed_ips  # noqa
from osc_nodeops.ops.port_float.base import TAG  # noqa
from osc_nodeops.ops.port_float.inventory import create  # noqa
from osc_nodeops.ops.port_float.inventory import list_ports  # noqa
from osc_nodeops.ops.port_float.reachability import check  # noqa
from osc_nodeops.ops.port_float.reachability import probe  # noqa
from osc_nodeops.ops.port_float.recovery import eui64_mac  # noqa
from osc_nodeops.ops.port_float.recovery import recover  # noqa
