"""Publisher process for the worker benchmark: N relay messages to one supplier's stream.

    python bench/relay_publisher.py URL SUPPLIER COUNT SESSIONS [RATE]

Go-format ``MinedRelayMessage`` entries (field ``data``), relays of ~250 random bytes with their
sha256 hash, CUPR 10, spread evenly over SESSIONS sessions, ``published_at_unix_nano`` set at
publication. RATE (relays/s) paces publication; 0 or absent: as fast as possible. Prints the
wall time of the first and last publication (ns) on stdout.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time

import redis

from relayminer.pipeline.relays import MinedRelayMessage


def main() -> None:
    url, supplier, count, sessions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rate = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    client = redis.Redis.from_url(url, protocol=2)
    rng = random.Random(42)
    stream = f"ha:relays:{supplier}"
    batch = 200
    first_ns = 0
    started = time.monotonic()
    for start in range(0, count, batch):
        if rate:
            due = started + start / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the load (this is the load generator, not a test)
        pipe = client.pipeline(transaction=False)
        now = time.time_ns()
        first_ns = first_ns or now
        for i in range(start, min(count, start + batch)):
            body = rng.randbytes(250)
            msg = MinedRelayMessage(
                relay_hash=hashlib.sha256(body).digest(),
                relay_bytes=body,
                compute_units_per_relay=10,
                session_id=f"bench-session-{i % sessions}",
                session_start_height=1,
                session_end_height=10,
                supplier_operator_address=supplier,
                service_id="svc",
                application_address="pokt1app",
                published_at_unix_nano=now,
            )
            pipe.xadd(stream, {"data": msg.SerializeToString()})
        pipe.execute()
    print(first_ns, time.time_ns(), flush=True)


if __name__ == "__main__":
    main()
