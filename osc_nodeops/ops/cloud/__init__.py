"""The cloud as every runbook reaches it: API calls and their faults
(``calls``), nova's microversions and services (``nova``)."""
