"""Exercise self-checks: the framework, and one module per notebook topic.

Each check prints exactly one line starting with ✓ (passed, saying what was verified)
or ✗ (failed or not attempted, with a hint) and never raises. See ``_core``.
"""

from ._core import (
    CheckResult,
    Failed,
    as_answer_array,
    as_answer_index,
    as_answer_number,
    as_answer_tuple,
    compare,
    diagnose,
    fmt_err,
    self_check,
)

__all__ = [
    "CheckResult",
    "Failed",
    "as_answer_array",
    "as_answer_index",
    "as_answer_number",
    "as_answer_tuple",
    "compare",
    "diagnose",
    "fmt_err",
    "self_check",
]
