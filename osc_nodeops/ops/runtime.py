"""What a run shares with its surroundings: the ``Report`` base every
runbook's report derives from."""

from osc_nodeops import errors


class Report(object):
    """The base of every runbook's report.

    A report says what was done: ``rows`` (the table the command prints,
    a field or property of each report), ``ok`` (everything was done) and
    ``interrupted`` (a signal stopped the run).  ``exit_status`` is
    computed from them here, once, for every command: 130 when interrupted
    (the rows still say what is known), 0 when ok, else 1.
    """

    @property
    def ok(self) -> bool:
        """Everything was done (a field or property of each report)."""
        return True

    @property
    def interrupted(self) -> bool:
        """A signal stopped the run."""
        return False

    @property
    def exit_status(self):
        if self.interrupted:
            return errors.EXIT_INTERRUPTED
        return errors.EXIT_OK if self.ok else errors.EXIT_INCOMPLETE
