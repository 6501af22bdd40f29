"""CometBFT RPC (v0.38) over HTTP and the websocket: status, blocks, block results, new headers.

HTTP calls are GET URIs (``/block?height=N``); int64 params and results are strings. Transport
failures, timeouts and JSON-RPC errors raise :class:`ChainUnavailableError`; an answer without
the fields this client needs raises :class:`MalformedResponseError` naming the method.

:meth:`CometClient.blocks` follows the ``tm.event='NewBlockHeader'`` websocket subscription like
the Go miner (``client/block_subscriber.go``): each header's hash is read from ``/block`` (the
block ID hash), duplicate or lower heights are ignored, a lost connection is re-established
with exponential backoff, and heights missed meanwhile are fetched over HTTP so every height is
yielded once, in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from relayminer.chain.base import Block, ChainEvent, ChainUnavailableError
from relayminer.chain.pocket.grpc_client import MalformedResponseError

__all__ = ["CometClient", "NodeStatus", "decode_events", "parse_time"]

log = logging.getLogger(__name__)

_NEW_BLOCK_HEADER = "tm.event='NewBlockHeader'"
#: attributes the SDK adds that are not event fields (spec: drop before decoding)
_EXTRA_ATTRIBUTES = frozenset({"mode", "msg_index"})


@dataclass(frozen=True, slots=True)
class NodeStatus:
    network: str
    latest_height: int
    latest_time_unix: float
    catching_up: bool


def parse_time(text: str) -> float:
    """RFC 3339 with up to nanoseconds (``2026-08-20T10:00:30.123456789Z``) -> unix seconds."""
    base, _, rest = text.partition(".")
    fraction = ""
    if rest:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
    else:
        base, zone = text[:19], text[19:]
    if zone in ("Z", "z", ""):
        zone = "+00:00"
    whole = datetime.fromisoformat(base + zone).timestamp()
    return whole + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def _unquote(value: str) -> str:
    """Event attribute values are proto-JSON text: strings and 64-bit ints are quoted."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value


def decode_events(height: int, events: Any) -> list[ChainEvent]:
    """ABCI events -> :class:`ChainEvent` (type without its package, values unquoted)."""
    out: list[ChainEvent] = []
    for event in events or ():
        attributes = {
            str(a.get("key", "")): _unquote(str(a.get("value", "")))
            for a in event.get("attributes") or ()
            if a.get("key") not in _EXTRA_ATTRIBUTES
        }
        kind = str(event.get("type", "")).rsplit(".", 1)[-1]
        out.append(ChainEvent(height=height, type=kind, attributes=attributes))
    return out


class CometClient:
    """One CometBFT RPC endpoint (``http://host:26657``)."""

    def __init__(
        self,
        rpc_url: str,
        *,
        timeout: float = 5.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 15.0,
    ) -> None:
        self.rpc_url = rpc_url.rstrip("/")  # "//websocket" breaks behind proxies
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._session: aiohttp.ClientSession | None = None
        self.reconnects = 0

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _get(self, method: str, **params: str) -> dict[str, Any]:
        try:
            async with self._http().get(f"{self.rpc_url}/{method}", params=params) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ChainUnavailableError(f"cometbft {method}: {type(err).__name__}") from None
        except ValueError:
            raise MalformedResponseError(method, "not JSON") from None
        if not isinstance(body, dict):
            raise MalformedResponseError(method, "not a JSON-RPC object")
        if body.get("error"):
            error = body["error"]
            detail = error.get("data") or error.get("message") if isinstance(error, dict) else error
            raise ChainUnavailableError(f"cometbft {method}: {detail}")
        result = body.get("result")
        if not isinstance(result, dict):
            raise MalformedResponseError(method, "no result")
        return result

    async def status(self) -> NodeStatus:
        result = await self._get("status")
        try:
            sync = result["sync_info"]
            return NodeStatus(
                network=str(result["node_info"]["network"]),
                latest_height=int(sync["latest_block_height"]),
                latest_time_unix=parse_time(str(sync["latest_block_time"])),
                catching_up=bool(sync["catching_up"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise MalformedResponseError("status", f"missing or bad field {err}") from None

    async def block(self, height: int | None = None) -> Block:
        """The committed block at ``height`` (None: latest); hash = ``block_id.hash``."""
        params = {} if height is None else {"height": str(height)}
        result = await self._get("block", **params)
        try:
            header = result["block"]["header"]
            block_hash = bytes.fromhex(str(result["block_id"]["hash"]))
            block = Block(
                height=int(header["height"]),
                hash=block_hash,
                time_unix=parse_time(str(header["time"])),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise MalformedResponseError("block", f"missing or bad field {err}") from None
        if len(block.hash) != 32:
            raise MalformedResponseError("block", "block_id.hash is not 32 bytes")
        return block

    async def block_results(self, height: int) -> list[ChainEvent]:
        """Events of block ``height``: every tx's, then the finalize-block ones."""
        result = await self._get("block_results", height=str(height))
        try:
            events: list[ChainEvent] = []
            for tx in result.get("txs_results") or ():
                events.extend(decode_events(height, tx.get("events")))
            events.extend(decode_events(height, result.get("finalize_block_events")))
        except (AttributeError, TypeError) as err:
            raise MalformedResponseError("block_results", str(err)) from None
        return events

    async def _headers(self) -> AsyncIterator[int | None]:
        """One websocket subscription: ``None`` once subscribed, then each new header's
        height. Ends when the connection drops."""
        ws_url = self.rpc_url.replace("http", "ws", 1) + "/websocket"
        request = {
            "jsonrpc": "2.0",
            "method": "subscribe",
            "id": 1,
            "params": {"query": _NEW_BLOCK_HEADER},
        }
        async with self._http().ws_connect(ws_url, heartbeat=20.0) as ws:
            await ws.send_json(request)
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                doc = json.loads(message.data)
                if doc.get("error"):
                    raise ChainUnavailableError(f"cometbft subscription: {doc['error']}")
                data = (doc.get("result") or {}).get("data")
                if not data:
                    yield None  # the subscribe ack: from now on no header is missed
                    continue
                yield int(data["value"]["header"]["height"])

    async def blocks(self, after_height: int) -> AsyncIterator[Block]:
        """Every block above ``after_height``, in order, forever (reconnects, fills gaps).

        Subscribe first, then read ``/status``: a block committed in between is both announced
        and caught up, and the height check keeps it from being yielded twice.
        """
        last = after_height
        delay = self.backoff_initial
        while True:
            try:
                async for announced in self._headers():
                    delay = self.backoff_initial
                    target = (await self.status()).latest_height if announced is None else announced
                    while last < target:
                        last += 1
                        yield await self.block(last)
            except (
                ChainUnavailableError,
                MalformedResponseError,
                aiohttp.ClientError,
                TimeoutError,
                ValueError,
                KeyError,
                TypeError,
            ) as err:
                log.warning(
                    "cometbft websocket lost; reconnecting",
                    extra={"error": type(err).__name__, "retry_in_s": delay},
                )
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)
