"""The base class of every error a user can fix (bad flags, data, models, handles).

Each module raises its own subclass (`data.DataError`, `transfer.TransferError`, ...),
whose message names the problem and the fix. Command lines catch `UserError` once, in
`cli.run`, and print it as one line with exit code 2; anything else is a bug and keeps
its traceback.
"""


class UserError(Exception):
    """A problem in what the user asked for or gave; the message says what to do."""
