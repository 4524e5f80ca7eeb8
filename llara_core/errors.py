"""One error base for the library, so that a caller (a node, the CLI) catches one type.

Every error the library raises on purpose derives from :class:`LlaraError`. Most
also derive from the built-in type they always were (``ValueError`` for bad
input, ``RuntimeError`` for a failed operation), so existing ``except ValueError``
handlers keep working.
"""

from __future__ import annotations


class LlaraError(Exception):
    """Base of every error llara_core raises on purpose; the message says what to change."""


class ConfigError(LlaraError, ValueError):
    """A configuration value, file or flag is invalid (the message names the key and the valid choices)."""


class UsageError(LlaraError, ValueError):
    """A command was called wrongly: missing input, bad option combination (the CLI exits with code 2)."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An error as one line for a report: its type (unless it is ours, written for people) and first line.

    Third-party messages can run to a thousand characters (a parser's dump of a
    message definition); reports keep the first line, shortened, and callers
    log the full text at debug level.
    """
    text = (str(exc).strip().splitlines() or [""])[0]
    text = text if len(text) <= limit else text[:limit] + " …"
    return text if isinstance(exc, LlaraError) else f"{type(exc).__name__}: {text}"
