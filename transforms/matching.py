"""The matching form of text: what every matching key sees, never what the lake stores.

Stored text is Unicode NFC (:func:`transforms.clean.normalise_text`): it keeps "7¾", "ﬁ" and
Arabic presentation forms as the page wrote them. Matching keys (the content hash, deduplication's
words and shingles, title comparisons) fold compatibility forms with NFKC, so that "ﬁ" and "fi",
"½" and "1⁄2" are one word there. One definition, used by cleaning and deduplication alike, so
that the content hash and the shingles can never disagree on what is the same text.
"""

from __future__ import annotations

import unicodedata

__all__ = ["matching_text"]


def matching_text(text: str) -> str:
    """The text as matching keys see it: NFKC (compatibility forms folded: "ﬁ" → "fi", "½" → "1⁄2").

    ASCII text is its own matching form (the common case, skipped without normalising).
    """
    return text if text.isascii() else unicodedata.normalize("NFKC", text)
