"""spin_sdk's `wit` package names, mapped onto wasikv's bindings (hand-written, not generated)."""
