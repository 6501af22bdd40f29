"""SIGINT/SIGTERM for the long-running commands: the first asks for a clean stop, the second
forces it.

The first signal sets the ``stop`` event the command's coroutine watches (the worker finishes
the batch in hand, the miner stops its pipelines and releases its leases, the demo prints its
partial summary) and records which signal it was, so the command can choose its exit code. A
second signal cancels the command's main task: an operator pressing Ctrl-C twice does not
wait for a stuck shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from relayminer.cli.failures import CliFailure

__all__ = ["StopSignals", "run_stoppable"]

T = TypeVar("T")

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Install with :meth:`install` inside the running loop; ``received`` is the first signal."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.received: signal.Signals | None = None
        self._task: asyncio.Task[object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> asyncio.Event:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for sig in _SIGNALS:
            self._loop.add_signal_handler(sig, self._on_signal, sig)
        return self.stop

    def uninstall(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            for sig in _SIGNALS:
                self._loop.remove_signal_handler(sig)
        self._loop = None

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.received is None:
            self.received = sig
            log.info("stopping", extra={"signal": sig.name})
            self.stop.set()
            return
        log.warning("second signal: stopping now", extra={"signal": sig.name})
        if self._task is not None and not self._task.done():
            self._task.cancel()


def run_stoppable(main: Callable[[StopSignals], Coroutine[Any, Any, T]]) -> tuple[T, StopSignals]:
    """``asyncio.run`` of ``main(signals)`` with the stop signals installed.

    Returns the result and the signals (``received`` says whether a signal stopped it). A
    second signal that cancelled the coroutine becomes a :class:`CliFailure` with exit code
    128 + the signal number."""
    signals = StopSignals()

    async def wrapper() -> T:
        signals.install()
        try:
            return await main(signals)
        finally:
            signals.uninstall()

    try:
        return asyncio.run(wrapper()), signals
    except asyncio.CancelledError:
        sig = signals.received or signal.SIGINT
        raise CliFailure(
            f"stopped by a second {sig.name} before the shutdown finished", 128 + int(sig)
        ) from None
