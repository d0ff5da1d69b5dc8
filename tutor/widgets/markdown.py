"""Model output as safe HTML: Markdown without raw HTML, highlighted code, then an allow-list.

markdown-it-py renders CommonMark with raw HTML turned off (it escapes it) and rejects
``javascript:`` links; nh3 then keeps only the tags and attributes listed here, so no script,
style or event handler can come through, whatever the model writes.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_FORMATTER = HtmlFormatter(nowrap=True, classprefix="tutor-hl-")

ALLOWED_TAGS = {"p", "br", "hr", "em", "strong", "code", "pre", "span", "blockquote", "ul", "ol", "li",
                "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td", "del"}
ALLOWED_ATTRIBUTES = {"span": {"class"}, "code": {"class"}, "pre": {"class"}, "a": {"href", "title"},
                      "th": {"style"}, "td": {"style"}}


def _highlight(code: str, language: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(language or "python")
    except ClassNotFound:
        return ""  # markdown-it escapes the code itself
    return highlight(code, lexer, _FORMATTER)


_MD = MarkdownIt("commonmark", {"html": False, "highlight": _highlight}).enable("table").enable("strikethrough")


def render_markdown(text: str) -> str:
    """Safe HTML for ``text`` (Markdown written by a model or a student)."""
    return nh3.clean(_MD.render(text), tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow")
