"""How the command line reports a failure: one line naming the cause and the fix, an exit code.

Every command runs inside :func:`report_failures`. An exception that reaches it becomes one
line on stderr, ``relayminer <command>: <cause>[; <fix>]``, passed through
:func:`~relayminer.logs.redact.redact_text` (no URL password ever reaches the terminal), and
an exit code:

=====  ==========================================================================
code   meaning
=====  ==========================================================================
0      success; ``run``/``worker`` stopped by SIGTERM or SIGINT (a requested stop)
1      runtime failure: Redis unreachable, a server that would not start, a port in use ...
2      configuration or usage error: bad flag, invalid configuration file, a Redis URL
       that cannot be parsed, a simulated chain created with another configuration
130    ``demo`` interrupted by SIGINT (its partial summary is printed first)
143    ``demo`` interrupted by SIGTERM (likewise)
=====  ==========================================================================

With ``--debug`` (or the log level DEBUG) the traceback is printed above the line.
"""

from __future__ import annotations

import contextlib
import errno
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

import click
from redis import exceptions as redis_errors

from relayminer.errors import RelayMinerError
from relayminer.logs.redact import redact_text

__all__ = [
    "EXIT_CONFIG",
    "EXIT_RUNTIME",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "CliFailure",
    "describe",
    "one_line",
    "report_failures",
]

EXIT_RUNTIME = 1
EXIT_CONFIG = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class CliFailure(click.ClickException):
    """A failure already phrased for the operator (cause and fix) with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_RUNTIME) -> None:
        super().__init__(message)
        self.code = exit_code


@dataclass(frozen=True)
class Failure:
    message: str
    exit_code: int


def one_line(text: str) -> str:
    """``text`` on one line (runs of whitespace, newlines included, become one space).

    >>> one_line("invalid configuration:\\n  a: bad\\n  b: worse")
    'invalid configuration: a: bad b: worse'
    """
    return " ".join(text.split())


def _reason(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _chain(err: BaseException) -> str:
    """The error and its causes, outermost first (``StoreError: ...: ConnectionError: ...``)."""
    parts = [_reason(err)]
    seen = {id(err)}
    cause = err.__cause__ or err.__context__
    while cause is not None and id(cause) not in seen and len(parts) < 4:
        seen.add(id(cause))
        parts.append(_reason(cause))
        cause = cause.__cause__ or cause.__context__
    return ": ".join(parts)


def _redis_cause(err: BaseException) -> redis_errors.RedisError | None:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, redis_errors.RedisError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def describe(err: BaseException) -> Failure:
    """The operator's line and exit code for an exception no command handled itself."""
    from relayminer.config import ConfigError

    if isinstance(err, CliFailure):
        return Failure(err.message, err.code)
    if isinstance(err, ConfigError):
        return Failure(str(err), EXIT_CONFIG)
    redis_err = _redis_cause(err)
    if isinstance(redis_err, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
        return Failure(
            f"Redis refused the credentials ({_chain(err)}); fix the user/password in the URL",
            EXIT_RUNTIME,
        )
    if isinstance(redis_err, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return Failure(
            f"lost the Redis connection ({_chain(err)}); check that the server is running and "
            "reachable",
            EXIT_RUNTIME,
        )
    if isinstance(redis_err, redis_errors.NoPermissionError):
        return Failure(
            f"Redis denied a command ({_chain(err)}); grant the user the commands relayminer "
            "needs (docs/operations.md)",
            EXIT_RUNTIME,
        )
    if isinstance(err, OSError) and err.errno == errno.EADDRINUSE:
        return Failure(f"address already in use ({err})", EXIT_RUNTIME)
    if isinstance(err, RelayMinerError | redis_errors.RedisError | OSError):
        return Failure(_chain(err), EXIT_RUNTIME)
    return Failure(
        f"internal error: {_chain(err)} (run with --debug for the traceback, and please report it)",
        EXIT_RUNTIME,
    )


def _debugging() -> bool:
    import logging

    ctx = click.get_current_context(silent=True)
    debug = bool(ctx is not None and ctx.find_root().meta.get("relayminer.debug"))
    return debug or logging.getLogger().getEffectiveLevel() <= logging.DEBUG


def _emit(prefix: str, failure: Failure, err: BaseException) -> None:
    if _debugging():
        text = "".join(traceback.format_exception(err))
        sys.stderr.write(redact_text(text))
    click.echo(f"{prefix}: {redact_text(one_line(failure.message))}", err=True)


@contextlib.contextmanager
def report_failures(prefix: str) -> Iterator[None]:
    """Turn any exception of the block into one redacted line on stderr and an exit code."""
    try:
        yield
    except (SystemExit, click.exceptions.Exit, click.Abort):
        raise
    except click.UsageError:
        raise  # click prints usage errors itself (exit code 2)
    except KeyboardInterrupt as err:
        _emit(prefix, Failure("interrupted", EXIT_SIGINT), err)
        sys.exit(EXIT_SIGINT)
    except Exception as err:
        failure = describe(err)
        _emit(prefix, failure, err)
        sys.exit(failure.exit_code)
