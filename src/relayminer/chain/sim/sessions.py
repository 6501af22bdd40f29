"""The simulated chain's session grid: session ids and the suppliers of a session.

Sessions follow the shared-params grid (``relayminer.protocol.windows``). The simulated chain has no
params history, so the grid is the one of its (constant) shared params.

**Session id format**: lowercase hex of
``SHA-256(utf8(application_address + "/" + service_id + "/" + decimal(session_start_height)))``
(64 characters). It depends only on (application, service, session start), so every process
computes the same id without asking the chain. (poktroll hashes the block hash at session
start too; the simulated chain does not, to stay reproducible across runs.)

**Suppliers of a session**: the suppliers staked for the service, all of them when there are
at most ``num_suppliers_per_session``; otherwise the first ``num_suppliers_per_session`` ranked
by ``SHA-256(utf8(session_id) + utf8(supplier))``. Sorted by address in the result.

>>> session_id_for("pokt1app", "svc", 1)[:16]
'c0d957f9b570d694'
"""

from __future__ import annotations

import hashlib

from relayminer.chain.base import OnChainSession
from relayminer.chain.sim.config import SimChainConfig
from relayminer.chain.sim.errors import SimSessionError
from relayminer.proto.poktroll_pb2 import SessionHeader
from relayminer.protocol.windows import session_end_height, session_start_height

#: memoised session supplier sets kept per config before the memo starts over
_MEMO_LIMIT = 4096

__all__ = [
    "session_for",
    "session_id_for",
    "session_suppliers",
]


def session_id_for(application_address: str, service_id: str, session_start_height: int) -> str:
    """The simulated chain's session id (see the module docstring for the format)."""
    text = f"{application_address}/{service_id}/{session_start_height}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def session_suppliers(config: SimChainConfig, service_id: str, session_id: str) -> tuple[str, ...]:
    """Suppliers of a session, deterministic (module docstring); memoised on ``config``."""
    memo = config.session_suppliers_memo
    found = memo.get((service_id, session_id))
    if found is not None:
        return found
    staked = [s for s, services in config.suppliers.items() if service_id in services]
    if len(staked) > config.num_suppliers_per_session:
        prefix = session_id.encode("utf-8")
        staked.sort(key=lambda s: hashlib.sha256(prefix + s.encode("utf-8")).digest())
        staked = staked[: config.num_suppliers_per_session]
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    found = memo[(service_id, session_id)] = tuple(sorted(staked))
    return found


def session_for(
    config: SimChainConfig, application_address: str, service_id: str, height: int
) -> OnChainSession:
    """The session of (application, service) containing ``height``.

    Raises :class:`SimSessionError` for an unknown service, an application not staked for the
    service, or ``height < 1``.
    """
    if isinstance(height, bool) or not isinstance(height, int):
        raise TypeError(f"height must be an int, got {type(height).__name__}")
    if height < 1:
        raise SimSessionError(f"no session at height {height} (must be >= 1)")
    if service_id not in config.services:
        raise SimSessionError(f"unknown service {service_id!r}")
    app_services = config.applications.get(application_address)
    if app_services is None:
        raise SimSessionError(f"unknown application {application_address!r}")
    if service_id not in app_services:
        raise SimSessionError(
            f"application {application_address!r} is not staked for service {service_id!r}"
        )
    p = config.shared_params
    start = session_start_height(p, height)
    end = session_end_height(p, height)
    sid = session_id_for(application_address, service_id, start)
    header = SessionHeader(
        application_address=application_address,
        service_id=service_id,
        session_id=sid,
        session_start_block_height=start,
        session_end_block_height=end,
    )
    return OnChainSession(header=header, suppliers=session_suppliers(config, service_id, sid))
