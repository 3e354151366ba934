"""Feedback pages handed back to students: static HTML, built only from escaped text.

Nothing from the submission is passed through as HTML: Markdown cells are rendered by
markdown-it-py with raw HTML off (any tag in them is shown as text), links only to http(s) and
mailto, and images as their alt text; code is highlighted by Pygments, which escapes it; text
outputs are escaped; output images are re-encoded base64 PNG/JPEG checked by their magic bytes;
and the page carries no script at all (its Content-Security-Policy allows none, nor any request). Hidden tests are never shown: their regions are replaced by a comment, and from
the first cell that holds hidden tests on, outputs are not shown (code running after a hidden
test could have captured it); those cells show only pass or fail.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import html
import re
import sys
from pathlib import Path

__all__ = ["PENDING", "hide_paths", "render", "summary_page"]

HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS\n?", re.S)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
MAX_PIXELS = 4096 * 4096  # a small file can still decode to gigabytes in the reader's browser


def _pixels(mime: str, raw: bytes) -> int | None:
    """Width x height of a PNG (its IHDR) or a JPEG (its first SOF marker), None if unreadable."""
    if mime == "image/png":
        if len(raw) < 24 or raw[12:16] != b"IHDR":
            return None
        return int.from_bytes(raw[16:20], "big") * int.from_bytes(raw[20:24], "big")
    i = 2
    while i + 9 < len(raw) and raw[i] == 0xFF:
        marker, length = raw[i + 1], int.from_bytes(raw[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(raw[i + 5:i + 7], "big") * int.from_bytes(raw[i + 7:i + 9], "big")
        i += 2 + length
    return None
_STYLE = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;white-space:pre-wrap}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}.ok{color:#1a7f37}.fail{color:#cf222e}.note{color:#6e4a00}
.out{border-left:3px solid #ccc;margin-left:.5rem}img{max-width:100%}"""


_HOST_PATHS: list[str] = []


def hide_paths(*paths) -> None:
    """Folders of the grading host that feedback must not show (the course, the output, the
    submissions); the Python installation and the home folder are always hidden."""
    found = {str(p) for p in (*paths, sys.prefix, sys.base_prefix, Path(sys.prefix).resolve(), Path.home())
             if str(p) not in ("", "/")}
    _HOST_PATHS[:] = sorted(found, key=len, reverse=True)


def _scrub(page: str) -> str:
    for path in _HOST_PATHS or [sys.prefix, sys.base_prefix]:
        page = page.replace(html.escape(path), "&lt;host&gt;")
    return page


def _page(title: str, body: list[str]) -> str:
    return _scrub("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}\n{_highlight_style()}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _markdown():
    """CommonMark with raw HTML off; links to http(s)/mailto only; images as their alt text."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.validateLink = lambda url: re.match(r"(https?:|mailto:)", url.strip(), re.I) is not None
    md.add_render_rule("image", lambda self, tokens, idx, options, env:
                       html.escape(self.renderInlineAsText(tokens[idx].children or [], options, env)))
    return md


_MD = None


def _markdown_html(text: str) -> str:
    global _MD
    _MD = _MD or _markdown()
    return f'<div class="md">{_MD.render(text)}</div>'


def _code_html(source: str) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return highlight(source, PythonLexer(), HtmlFormatter(cssclass="code"))


def _highlight_style() -> str:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(cssclass="code").get_style_defs(".code")


def _reason(reason: str, hidden: bool) -> str:
    """The failure reason shown to a student; an exception name only when it is a builtin one."""
    name = re.split(r"[ :]", reason, maxsplit=1)[0]  # "AssertionError: expected 3, got 2" -> AssertionError
    if hidden and not isinstance(getattr(builtins, name, None), type):
        return "failed"
    return reason


PENDING = "pending review"


def _score_table(outcome, hidden_ids: set[str], grade=None) -> list[str]:
    """The score heading and a row per graded cell. ``grade``: None (the tests' points are the
    grade), :data:`PENDING` (flagged: no points shown until an instructor has reviewed it), or
    ``{grade_id: points}`` (the reviewed grade, from the gradebook)."""
    rows = ["<table><tr><th>test</th><th>points</th><th>result</th></tr>"]
    total = maximum = 0.0
    for gid, (points, most) in outcome.scores.items():
        if isinstance(grade, dict):
            points = float(grade.get(gid, points))
        reason = outcome.failed.get(gid)
        result = ('<span class="ok">passed</span>' if reason is None else
                  f'<span class="fail">{html.escape(_reason(reason, gid in hidden_ids))}</span>')
        shown = f"? / {most:g}" if grade == PENDING else f"{points:g} / {most:g}"
        rows.append(f"<tr><td>{html.escape(gid)}</td><td>{shown}</td><td>{result}</td></tr>")
        total, maximum = total + points, maximum + most
    heading = (f"<h2>Score: {PENDING}</h2><p>An instructor reviews this submission before it is graded; "
               "the points appear here once that is done.</p>" if grade == PENDING else
               f"<h2>Score: {total:g} / {maximum:g}" + (" (reviewed)" if isinstance(grade, dict) else "") + "</h2>")
    return [heading, *rows, "</table>"]


def _output(out) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        return f'<pre class="out">{html.escape(out.get("text", ""))}</pre>'
    if kind == "error":
        text = ANSI.sub("", "\n".join(out.get("traceback", [])) or f"{out.get('ename')}: {out.get('evalue')}")
        return f'<pre class="out">{html.escape(text)}</pre>'
    data = out.get("data", {})
    for mime, magic in _MAGIC.items():
        if isinstance(data.get(mime), str):
            try:
                raw = base64.b64decode(data[mime], validate=False)
            except (binascii.Error, ValueError):
                continue
            if raw.startswith(magic):
                pixels = _pixels(mime, raw)
                if pixels is None or pixels > MAX_PIXELS:
                    return '<p>[a figure too large to show, or unreadable]</p>'
                return f'<img alt="figure" src="data:{mime};base64,{base64.b64encode(raw).decode()}">'
    if isinstance(data.get("text/plain"), str):
        return f'<pre class="out">{html.escape(data["text/plain"])}</pre>'
    return ""


def render(nb, outcome, title: str, grade=None, note: str = "") -> str:
    """Feedback page for one executed, scored notebook (see the module docstring for the rules);
    ``grade`` as for the score table: None, :data:`PENDING` or the reviewed ``{grade_id: points}``;
    ``note``: a line under the score (a late penalty)."""
    hidden_ids = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells if HIDDEN.search(c.source)}
    table = _score_table(outcome, hidden_ids, grade)
    body = [f"<h1>{html.escape(title)}</h1>", table[0], *([f"<p>{html.escape(note)}</p>"] if note else []), *table[1:]]
    seen_hidden = False
    for cell in nb.cells:
        seen_hidden = seen_hidden or bool(HIDDEN.search(cell.source))
        source = HIDDEN.sub("# (hidden tests run here; they are not shown)\n", cell.source)
        if cell.cell_type == "markdown":
            body.append(_markdown_html(source))
            continue
        body.append(_code_html(source) if cell.cell_type == "code" else f"<pre>{html.escape(source)}</pre>")
        if cell.cell_type != "code":
            continue
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in outcome.scores:
            reason = outcome.failed.get(gid)
            body.append('<p class="ok">passed</p>' if reason is None else
                        f'<p class="fail">{html.escape(_reason(reason, gid in hidden_ids))}</p>')
            body += [f'<p class="note">{html.escape(note)}</p>' for note in outcome.notes.get(gid, [])]
        if not seen_hidden:
            body += [_output(out) for out in cell.get("outputs", [])]
    return _page(title, body)


def summary_page(result, assignment: str) -> str:
    """Feedback for a submission without an executed notebook (missing, malformed, crashed, killed)."""
    body = [f"<h1>{html.escape(assignment)} / {html.escape(result.student)}</h1>",
            f"<p>Status: {html.escape(result.status)}</p>", "<ul>"]
    crashed = ["your code stopped the kernel (a crash, or a memory or CPU limit was reached)"] if result.crashed else []
    body += [f"<li>{html.escape(line)}</li>" for line in
             result.timeouts + crashed + result.malformed + result.notes]
    body.append("</ul>")
    for nb in result.notebooks.values():
        body += _score_table(nb, set(nb.scores))
    return _page(f"{assignment} feedback", body)
