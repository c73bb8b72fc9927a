"""`spin_sdk.wit.types`: the result types componentize-py's bindings use."""

from componentize_py_types import Err, Ok, Result, Some

__all__ = ["Err", "Ok", "Result", "Some"]
