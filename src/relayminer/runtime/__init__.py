"""The replica runtime: the Miner, supplier leases, Redis connections, the embedded server."""
