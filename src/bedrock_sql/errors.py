"""Errors that the CLI turns into one line on stderr and exit code 2."""


class UserError(Exception):
    """A mistake the user can fix: bad SQL, a missing snapshot, no credentials...

    The message is shown as is, on one line, without a traceback.
    """
