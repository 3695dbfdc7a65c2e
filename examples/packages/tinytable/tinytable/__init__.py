"""Render a list of rows as a Markdown (pipe) table."""

__version__ = "1.0.0"


def _cell(value):
    if isinstance(value, float):
        value = "%.2f" % value
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows, headers):
    """Return rows (a list of sequences) under headers as a Markdown table."""
    cells = [[_cell(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) and bool(rows)
               for i in range(len(headers))]

    def line(r):
        return "| " + " | ".join(c.rjust(w) if n else c.ljust(w)
                                 for c, w, n in zip(r, widths, numeric)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if n else "-" * (w + 2)
                          for w, n in zip(widths, numeric)) + "|"
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])
