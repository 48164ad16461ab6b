"""User-facing errors: the CLI prints their message (file, line, reason) instead of a traceback."""


class TrajetError(Exception):
    """An error a person can act on; its message says what is wrong and where."""

    exit_code = 2
