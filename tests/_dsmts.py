"""Reading the DSMTS reference data and scoring a simulation: re-exported from `grn._conformance`.

The reader and the scoring live in one place, `grn._conformance` (also used by ``grn dsmts``).
"""

from grn._conformance import (
    MAX_MEAN_FAILS as MAX_MEAN_FAILS,
    MAX_SD_FAILS as MAX_SD_FAILS,
    SD_REPORTED_ONLY as SD_REPORTED_ONLY,
    Reference as Reference,
    Score as Score,
    load_reference as load_reference,
    score as score,
)
