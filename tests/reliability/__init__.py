"""Issue #10: proof of what the system survives (faults, bad input, access, load)."""
