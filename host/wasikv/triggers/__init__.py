"""Triggers: ways a component is invoked other than `wasi:cli/run`.

`wasikv.triggers.registry` pairs each trigger kind of the manifest
(`wasikv.app.triggers`) with its runtime here. This package imports
`wasikv.app`, never the other way round.
"""
