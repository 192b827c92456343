"""User text in Streamlit's Markdown, shown as text.

File, folder and class names come from whoever made the dataset or the zip: a folder
named `[Session expired - log in](https:evil.example)` must read as that, not become a
link. Every page passes such text (and messages that quote it) through `md` or `code`.
"""

from __future__ import annotations

import re

# Every ASCII punctuation that Markdown, GitHub Markdown or Streamlit's own syntax
# (:emoji:, :color[...], $math$) can give a meaning; CommonMark allows escaping any of them.
_ACTIVE = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'^])")


def md(text: object) -> str:
    """`text` with every Markdown-active character escaped, on one line."""
    return _ACTIVE.sub(r"\\\1", " ".join(str(text).splitlines()))


def code(text: object) -> str:
    """`text` as an inline code span (no escapes work inside one: a longer fence does)."""
    text = " ".join(str(text).splitlines())
    fence = "`" * (max(map(len, re.findall(r"`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"
