"""ABCI events of the localnet, encoded as a poktroll node emits them.

A typed event becomes one attribute per top-level proto field, keys sorted, key = the proto field
name and value = that field's proto-JSON text (cosmos-sdk ``types/events.go``
``TypedEventToEvent``, gogo jsonpb with original names and zero values emitted): strings and
coin strings quoted (``"\\"14upokt\\""``), 64-bit integers quoted (``"\\"880100\\""``), int32
bare (``"1"``), enums by quoted name. EndBlock events also carry ``mode=EndBlock``; message
events carry ``msg_index``. Field lists: poktroll ``proto/pocket/{proof,tokenomics}/event.proto``.

The simulated chain describes what happened with its own :class:`~relayminer.chain.base.
ChainEvent` attributes; :func:`encode_block_event` and :func:`encode_msg_event` map them onto
those fields. Data the simulator does not record is looked up by the caller and passed in
(:class:`EventContext`).

>>> e = AbciEvent.typed("pocket.proof.EventProofValidityChecked", {"block_height": I64(7)})
>>> e.to_json()
{'type': 'pocket.proof.EventProofValidityChecked', 'attributes': [{'key': 'block_height', \
'value': '"7"', 'index': True}]}
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from relayminer.chain.base import ChainEvent, Claim
from relayminer.proto.tendermint_abci_pb2 import Event, EventAttribute

__all__ = [
    "I32",
    "I64",
    "AbciEvent",
    "EventContext",
    "coin",
    "encode_block_events",
    "encode_msg_event",
    "text",
    "tx_events",
]

DENOM: Final = "upokt"
#: simulator event types emitted by messages (they belong to the tx results)
MSG_EVENT_TYPES: Final = frozenset(
    {"EventClaimCreated", "EventClaimUpdated", "EventProofSubmitted", "EventProofUpdated"}
)
_SIM_ONLY_TYPES: Final = frozenset({"EventTxFailed"})
_SUPPLIER_REWARD_REASON: Final = (
    "TLM_RELAY_BURN_EQUALS_MINT_SUPPLIER_SHAREHOLDER_REWARD_DISTRIBUTION"
)
_STATUS_INT: Final = {"PENDING_VALIDATION": 0, "VALIDATED": 1, "INVALID": 2}


@dataclass(frozen=True, slots=True)
class _Json:
    """An attribute value already in proto-JSON text."""

    text: str


def text(value: str) -> _Json:
    return _Json(json.dumps(value))


def I64(value: int | str) -> _Json:
    return _Json(json.dumps(str(int(value))))


def I32(value: int | str) -> _Json:
    return _Json(str(int(value)))


def coin(amount: int | str) -> _Json:
    return _Json(json.dumps(f"{int(amount)}{DENOM}"))


def _raw(value: Any) -> _Json:
    return _Json(json.dumps(value, separators=(",", ":")))


@dataclass(frozen=True, slots=True)
class AbciEvent:
    """``tendermint.abci.Event``: a type and ordered (key, value) attributes, all indexed."""

    type: str
    attributes: tuple[tuple[str, str], ...]

    @classmethod
    def typed(
        cls, type_name: str, fields: Mapping[str, _Json], extra: Sequence[tuple[str, str]] = ()
    ) -> AbciEvent:
        attrs = [(k, fields[k].text) for k in sorted(fields)]
        return cls(type_name, (*attrs, *extra))

    def to_json(self) -> dict[str, Any]:
        """CometBFT v0.38 JSON (plain-string keys and values)."""
        return {
            "type": self.type,
            "attributes": [{"key": k, "value": v, "index": True} for k, v in self.attributes],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AbciEvent:
        return cls(
            str(doc["type"]), tuple((str(a["key"]), str(a["value"])) for a in doc["attributes"])
        )

    def to_proto(self) -> Event:
        return Event(
            type=self.type,
            attributes=[EventAttribute(key=k, value=v, index=True) for k, v in self.attributes],
        )


@dataclass(slots=True)
class EventContext:
    """What the simulator's events leave out, looked up by the caller before encoding."""

    #: claims by (supplier, session id), for EventProofValidityChecked
    claims: Mapping[tuple[str, str], Claim] = field(default_factory=dict)
    #: supplier stakes after the block, for EventSupplierSlashed
    supplier_stakes: Mapping[str, int] = field(default_factory=dict)


def _claim_fields(a: Mapping[str, str], status: int) -> dict[str, _Json]:
    return {
        "num_relays": I64(a["num_relays"]),
        "num_claimed_compute_units": I64(a["claimed_compute_units"]),
        "num_estimated_compute_units": I64(a["estimated_compute_units"]),
        "claimed_upokt": coin(a["claimed_upokt"]),
        "service_id": text(a["service_id"]),
        "application_address": text(a["application_address"]),
        "session_end_block_height": I64(a["session_end_block_height"]),
        "claim_proof_status_int": I32(status),
        "supplier_operator_address": text(a["supplier_operator_address"]),
        "num_estimated_relays": I64(a["num_estimated_relays"]),
    }


def encode_msg_event(event: ChainEvent, msg_index: int) -> AbciEvent | None:
    """A message's event (claim created/updated, proof submitted/updated), or None."""
    if event.type not in MSG_EVENT_TYPES:
        return None
    fields = _claim_fields(event.attributes, 0)
    return AbciEvent.typed(f"pocket.proof.{event.type}", fields, [("msg_index", str(msg_index))])


def _settled(a: Mapping[str, str]) -> dict[str, _Json]:
    requirement = int(a.get("proof_requirement_int", "0"))
    fields = _claim_fields(a, 1 if requirement else 0)
    owner = a.get("supplier_owner_address", a["supplier_operator_address"])
    reward = int(a.get("supplier_reward_upokt", "0"))
    fields.update(
        {
            "proof_requirement_int": I32(requirement),
            "reward_distribution": _raw({owner: f"{reward}{DENOM}"}),
            "reward_distribution_detailed": _raw(
                [
                    {
                        "recipient_address": owner,
                        "op_reason": _SUPPLIER_REWARD_REASON,
                        "amount": f"{reward}{DENOM}",
                    }
                ]
            ),
            "settled_upokt": coin(a.get("settled_upokt", "0")),
            "mint_ratio": _Json(str(float(a.get("mint_ratio", "1")))),
            "session_id": text(a["session_id"]),
            "supplier_owner_address": text(owner),
            "minted_upokt": coin(a.get("minted_upokt", "0")),
            "overservicing_loss_upokt": coin(0),
            "deflation_loss_upokt": coin(
                max(0, int(a.get("settled_upokt", "0")) - int(a.get("minted_upokt", "0")))
            ),
        }
    )
    return fields


def encode_block_events(events: Sequence[ChainEvent], ctx: EventContext) -> list[AbciEvent]:
    """The ``finalize_block_events`` of a block from the simulator's block events (message
    events and simulator-only events are left out: they belong to the tx results)."""
    out: list[AbciEvent] = []
    expired: dict[str, Mapping[str, str]] = {}
    end_block = [("mode", "EndBlock")]
    for i, event in enumerate(events):
        a = event.attributes
        if event.type in MSG_EVENT_TYPES or event.type in _SIM_ONLY_TYPES:
            continue
        if event.type == "EventProofValidityChecked":
            key = (a["supplier_operator_address"], a["session_id"])
            claim = ctx.claims.get(key)
            header = claim.session_header if claim is not None else None
            fields = {
                "block_height": I64(event.height),
                "failure_reason": text(a.get("failure_reason", "")),
                "service_id": text(header.service_id if header else ""),
                "application_address": text(header.application_address if header else ""),
                "session_end_block_height": I64(header.session_end_block_height if header else 0),
                "claim_proof_status_int": I32(_STATUS_INT.get(a["proof_validation_status"], 0)),
                "supplier_operator_address": text(a["supplier_operator_address"]),
            }
            out.append(AbciEvent.typed(f"pocket.proof.{event.type}", fields, end_block))
        elif event.type == "EventClaimSettled":
            out.append(
                AbciEvent.typed("pocket.tokenomics.EventClaimSettled", _settled(a), end_block)
            )
        elif event.type == "EventClaimExpired":
            reason = a.get("expiration_reason", "PROOF_MISSING")
            fields = _claim_fields(a, 2 if reason == "PROOF_INVALID" else 0)
            fields["expiration_reason"] = text(reason)
            expired[a["session_id"]] = a
            out.append(AbciEvent.typed("pocket.tokenomics.EventClaimExpired", fields, end_block))
        elif event.type == "EventSupplierSlashed":
            claim_a = expired.get(a["session_id"], {})
            supplier = a["supplier_operator_address"]
            fields = {
                "proof_missing_penalty": coin(a.get("slashed_upokt", "0")),
                "service_id": text(claim_a.get("service_id", "")),
                "application_address": text(claim_a.get("application_address", "")),
                "session_end_block_height": I64(claim_a.get("session_end_block_height", "0")),
                "claim_proof_status_int": I32(
                    2 if claim_a.get("expiration_reason") == "PROOF_INVALID" else 0
                ),
                "supplier_operator_address": text(supplier),
                "supplier_stake_after_slash": coin(ctx.supplier_stakes.get(supplier, 0)),
            }
            out.append(AbciEvent.typed("pocket.tokenomics.EventSupplierSlashed", fields, end_block))
        elif event.type == "EventClaimDiscarded":
            fields = {
                "error": text(a.get("error", "")),
                "service_id": text(a["service_id"]),
                "application_address": text(a["application_address"]),
                "session_end_block_height": I64(a["session_end_block_height"]),
                "claim_proof_status_int": I32(0),
                "supplier_operator_address": text(a["supplier_operator_address"]),
            }
            out.append(AbciEvent.typed("pocket.tokenomics.EventClaimDiscarded", fields, end_block))
        elif event.type == "EventApplicationOverserviced":
            settled = next(
                (e.attributes for e in events[i + 1 :] if e.type == "EventClaimSettled"), {}
            )
            fields = {
                "application_addr": text(a["application_address"]),
                "supplier_operator_addr": text(a["supplier_operator_address"]),
                "expected_burn": coin(a["expected_burn_upokt"]),
                "effective_burn": coin(a["effective_burn_upokt"]),
                "service_id": text(settled.get("service_id", "")),
                "session_end_block_height": I64(settled.get("session_end_block_height", "0")),
            }
            out.append(
                AbciEvent.typed("pocket.tokenomics.EventApplicationOverserviced", fields, end_block)
            )
        else:  # a new simulator event type: pass it through as plain attributes
            attrs = tuple(sorted(a.items()))
            out.append(AbciEvent(f"relayminer.sim.{event.type}", (*attrs, *end_block)))
    return out


def tx_events(
    *,
    fee_upokt: int,
    fee_payer: str,
    signers_sequences: Sequence[tuple[str, int]],
    signatures: Sequence[bytes],
) -> list[AbciEvent]:
    """The ante handler's events of a tx (x/auth ``tx`` events: fee, acc_seq, signature)."""
    fee = f"{fee_upokt}{DENOM}" if fee_upokt else ""
    events = [AbciEvent("tx", (("fee", fee), ("fee_payer", fee_payer)))]
    events += [AbciEvent("tx", (("acc_seq", f"{a}/{s}"),)) for a, s in signers_sequences]
    events += [
        AbciEvent("tx", (("signature", base64.b64encode(sig).decode()),)) for sig in signatures
    ]
    return events


def message_event(type_url: str, sender: str, msg_index: int) -> AbciEvent:
    """baseapp's ``message`` event of one executed message."""
    return AbciEvent(
        "message",
        (
            ("action", type_url),
            ("sender", sender),
            ("module", "proof"),
            ("msg_index", str(msg_index)),
        ),
    )
