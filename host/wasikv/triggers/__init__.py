"""Triggers: ways a component is invoked other than `wasi:cli/run`."""
