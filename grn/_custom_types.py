"""Array-type aliases shared across grn (jaxtyping shapes, documentation only)."""

from collections.abc import Mapping
from typing import Any, TypeAlias

from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

State: TypeAlias = Float[Array, " species"]
Propensities: TypeAlias = Float[Array, " reactions"]
Inputs: TypeAlias = Float[Array, " inputs"]
Times: TypeAlias = Float[Array, " times"]
Ensemble: TypeAlias = Float[Array, "cells times species"]
Params: TypeAlias = Mapping[str, Any]
Scalar: TypeAlias = Float[ArrayLike, ""]

__all__ = [
    "Array",
    "ArrayLike",
    "Bool",
    "Ensemble",
    "Float",
    "Inputs",
    "Int",
    "PRNGKeyArray",
    "Params",
    "Propensities",
    "Scalar",
    "State",
    "Times",
]
