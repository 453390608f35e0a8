"""The two renderings of a mer.evaluate.summary.Summary: summary.md (markdown) and summary.html (one standalone
page for the Snakemake report). Markup only: every word and figure comes from the summary."""

from html import escape

import pandas as pd

from mer.evaluate.notes import NOTES


def to_markdown(summary):
    """summary.md: the results table and its note, then each section (table, note and matrices)."""
    lines = [f"# {summary.title}", "", *_md_table(summary.table), "", summary.note]
    for s in summary.sections:
        lines += ["", f"## {s.title}", "", *_md_table(s.table), "",
                  f"{s.note}: {s.reading}." if s.reading else f"{s.note}."]
        for m in s.matrices:
            lines += ["", NOTES["matrix"].format(caption=m.caption), "", *_md_table(m)]
    return "\n".join(lines) + "\n"


def _md_table(table):
    return ["| " + " | ".join(table.headings) + " |",
            "|" + "|".join("---:" if right else "---" for right in table.numeric) + "|",
            *("| " + " | ".join(row) + " |" for row in table.rows)]


SUMMARY_CSS = [  # the page's look; Styler adds each score's bar as a per-cell gradient
    {"selector": "", "props": "border-collapse: collapse; font: 13px/1.4 system-ui, sans-serif; color: #1e293b;"},
    {"selector": "caption", "props": "font-size: 1.2em; font-weight: bold; text-align: left; padding: 0.5em 0;"},
    {"selector": "th, td", "props": "padding: 0.3em 0.5em; border-bottom: 1px solid #e2e8f0; white-space: nowrap;"},
    {"selector": "th", "props": "background: #f1f5f9; text-align: left;"},
]
# symbols the page writes as entities
ENTITIES = {"−": "&minus;", "Δ": "&Delta;", "–": "&ndash;"}


def to_html(summary):
    """The results table through pandas' Styler, a bar behind each score showing its value on a 0..1 scale and
    the published rows greyed; then each section's table."""
    shown = pd.DataFrame(summary.table.rows, columns=summary.table.headings)
    values, reported = summary.values, summary.reported
    grey = lambda row: ["color: #64748b; font-style: italic;" if reported[row.name] else ""] * len(row)  # noqa: E731
    # Styler.bar draws from numeric cells, and these hold text: the same bar (a gradient stop at the value) by hand
    bars = lambda col: [  # noqa: E731
        "" if pd.isna(v) else f"background: linear-gradient(90deg, #bfdbfe {100 * min(max(v, 0), 1):.1f}%, "
        f"transparent {100 * min(max(v, 0), 1):.1f}%);" for v in values[col.name]]
    styler = (
        shown.style.hide(axis="index")
        .format(escape="html")
        .apply(bars, subset=list(values.columns))
        .apply(grey, axis=1)
        .set_uuid("summary")  # the table's id: T_summary
        .set_caption(_text(summary.title))
        .set_table_styles(SUMMARY_CSS)
    )
    html = styler.to_html(doctype_html=True)
    paragraph = " ".join(summary.note.splitlines())  # a markdown line break is a space
    html = html.replace("</table>", f"</table>\n<p>{_text(paragraph)} {_text(NOTES['bar'])}</p>", 1)
    for s in summary.sections:
        matrices = "".join(_html_table(m) for m in s.matrices)
        html = html.replace("</body>", f"<h3>{_text(s.title)}</h3>\n{_html_table(s.table)}\n<p>{_text(s.note)}.</p>\n"
                            + (f"{matrices}\n" if matrices else "") + "</body>", 1)
    return html


def _html_table(table):
    caption = f"<caption>{_text(table.caption)}</caption>" if table.caption else ""
    head = "<tr>" + "".join(f"<th>{_text(h)}</th>" for h in table.headings) + "</tr>"
    body = "".join("<tr>" + "".join(f"<{tag}>{_text(c)}</{tag}>" for tag, c in zip(
        ["th" if table.row_headings else "td"] + ["td"] * (len(row) - 1), row, strict=True)) + "</tr>"
        for row in table.rows)
    return f"<table>{caption}{head}{body}</table>"


def _text(s):
    """Text in the page's markup: escaped, with ENTITIES."""
    return "".join(ENTITIES.get(c, c) for c in escape(s))
