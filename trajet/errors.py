"""User-facing errors: the CLI prints their message (file, line, reason) instead of a traceback."""


class TrajetError(Exception):
    """An error a person can act on; its message says what is wrong and where."""

    exit_code = 2


class PhraseError(ValueError):
    """A phrase that breaks the data model (a span off word boundaries, a malformed tag sequence); the message is
    the reason a person reads. Readers of data files wrap it with the file and line (phrases.DataFileError)."""
