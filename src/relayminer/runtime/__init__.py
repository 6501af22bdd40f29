"""The replica runtime: the Miner, supplier leases, the lifecycle priority, tree build processes,
Redis connections, the embedded server."""
