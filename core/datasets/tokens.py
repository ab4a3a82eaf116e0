"""Token counts for fine-tuning data: tiktoken when it can run offline, characters otherwise.

tiktoken ships no encoding file: ``get_encoding`` downloads its BPE file on first use and
caches it in ``TIKTOKEN_CACHE_DIR``. We never trigger that download, so tiktoken is used only
when it is installed *and* that cache directory is set and holds files (a pre-seeded cache);
otherwise lengths are characters and every report says which unit it counted and why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ENCODING = "cl100k_base"


@dataclass
class TokenCounter:
    """Counts the length of a text in tokens (``method`` ``tiktoken:<encoding>``) or in
    characters (``method`` ``characters``); ``note`` says why that unit was chosen."""

    method: str
    note: str
    _encoding: Any = field(default=None, repr=False)

    @property
    def unit(self) -> str:
        return "tokens" if self._encoding is not None else "characters"

    def count(self, text: str) -> int:
        if self._encoding is None:
            return len(text)
        return len(self._encoding.encode(text, disallowed_special=()))

    def describe(self) -> dict[str, str]:
        return {"method": self.method, "unit": self.unit, "note": self.note}

    @classmethod
    def characters(cls, note: str = "characters requested") -> TokenCounter:
        return cls("characters", note)

    @classmethod
    def auto(cls, encoding: str = DEFAULT_ENCODING) -> TokenCounter:
        """tiktoken with ``encoding`` when it can load without a download, else characters."""
        try:
            import tiktoken
        except ImportError:
            return cls.characters("tiktoken is not installed: lengths are characters")
        cache = os.environ.get("TIKTOKEN_CACHE_DIR", "").strip()
        if not cache or not Path(cache).is_dir() or not any(Path(cache).iterdir()):
            return cls.characters(
                "tiktoken is installed but ships no encoding file and would download one; "
                "lengths are characters (set TIKTOKEN_CACHE_DIR to a pre-filled tiktoken cache "
                "to count tokens)"
            )
        try:
            enc = tiktoken.get_encoding(encoding)
        except Exception as exc:  # a cache without this encoding: it would try to download
            return cls.characters(
                f"tiktoken could not load {encoding} from TIKTOKEN_CACHE_DIR "
                f"({type(exc).__name__}); lengths are characters"
            )
        return cls(f"tiktoken:{encoding}", f"tiktoken {encoding} from the local cache", enc)
