from osc_nodeops.ops import lease

# The lease's read-back delay (ops/lease.py SETTLE) is real time; the fakes
# answer at once, so unit tests read back at once (tests/unit/test_lease.py
# proves the race with its own delays).
lease.SETTLE = (0.0, 0.0)
