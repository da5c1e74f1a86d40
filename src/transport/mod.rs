//! Reaching servers: the SSH transport, the one quoting function, atomic file writes.
