"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class AedgeError(Exception):
    """Bad input or a file that cannot be used: the message says which and why."""
