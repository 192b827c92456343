"""User text in Streamlit's Markdown, shown as text.

File, folder and class names come from whoever made the dataset or the zip: a folder
named `[Session expired - log in](https:evil.example)` must read as that, not become a
link. Every page passes such text (and messages that quote it) through `md` or `code`.
"""

from __future__ import annotations

import re

# What Markdown, GitHub Markdown or Streamlit's own syntax can give a meaning to, escaped as
# narrowly as possible so that ordinary text (snake_case, "epochs: 5.", 1e-3) reads the same
# in the page source: emphasis, code, links and images, HTML and autolinks (<...>, www.,
# http://, e-mail), math ($), strikethrough (~), Streamlit's :emoji: and :color[...].
_ACTIVE = re.compile(
    r"[\\`*\[\]<>$~@]"  # always active
    r"|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])"  # emphasis, but not inside snake_case words
    r"|:(?=[A-Za-z/])"  # :smile:, :red[...], https://
    r"|(?<=\bwww)\."  # www.example.com autolinks
)
_LINE_START = re.compile(r"^(\s*)([#+=|-]|\d+(?=[.)]))")  # a heading, list, rule or table at the start


def md(text: object) -> str:
    """`text` with what Markdown would act on escaped, on one line."""
    text = _ACTIVE.sub(lambda m: "\\" + m.group(0), " ".join(str(text).splitlines()))
    return _LINE_START.sub(_escape_line_start, text)


def _escape_line_start(match: re.Match) -> str:
    indent, marker = match.groups()
    if marker[0].isdigit():  # "1." starts a list: escape the dot, "1\."
        return indent + marker + "\\"
    return indent + "\\" + marker


def code(text: object) -> str:
    """`text` as an inline code span (no escapes work inside one: a longer fence does)."""
    text = " ".join(str(text).splitlines())
    fence = "`" * (max(map(len, re.findall(r"`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"
