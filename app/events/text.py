"""The text the stores can hold: the one rule for every string a client sends us to keep or
to look up."""

from __future__ import annotations

import re

# PostgreSQL text (and JSONB) holds neither NUL nor a lone surrogate: JSON's "\ud800" decodes
# to one, and it has no UTF-8 form, so the driver could not send it. Such a string must be
# refused where it comes in, not fail in the driver.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    """True when PostgreSQL text can hold the string: no NUL, no lone surrogate."""
    return _UNSTORABLE.search(text) is None
