"""Self-contained reports: HTML pages with inline SVG charts, and Markdown, for the KFP dashboard.

Nothing is fetched from the network (no script, style sheet or font), so a report renders in the
dashboard's sandboxed frame and on an air-gapped cluster. Each builder takes plain values or protos
and returns text; the stages write it to their HTML and Markdown artifacts.
"""
import html
import math

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; margin: 20px;
       color: #1f2933; background: #fff; }
h1 { font-size: 20px; margin: 0 0 12px; } h2 { font-size: 16px; margin: 20px 0 8px; }
h3 { font-size: 14px; margin: 0 0 6px; }
table { border-collapse: collapse; margin: 6px 0 14px; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 4px 10px; text-align: left; font-size: 13px; }
th { background: #f5f7fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.feature { border: 1px solid #e4e7eb; border-radius: 6px; padding: 10px 12px; margin: 10px 0; }
.splits { display: flex; gap: 24px; flex-wrap: wrap; }
.split { min-width: 260px; }
.muted { color: #7b8794; font-size: 12px; }
.ok { color: #1e7f4f; font-weight: 600; } .bad { color: #b42318; font-weight: 600; }
svg text { font-size: 10px; fill: #52606d; }
"""
_PALETTE = ["#2f6fde", "#e8743b", "#19a979", "#945ecf", "#ed4a7b", "#13a4b4"]


def escape(value):
    return html.escape(str(value), quote=True)


def number(value, digits=4):
    """A readable number: integers as such, others to `digits` significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def html_page(title, *sections):
    body = "\n".join(sections)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n"
            f"<body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n")


def html_table(headers, rows, numeric=()):
    """A table; `rows` hold already-escaped HTML or plain values (escaped here)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers) if any(headers) else ""
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = cell.html if isinstance(cell, Raw) else escape(cell)
            cells.append(f"<td class=\"num\">{text}</td>" if i in numeric else f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{''.join(body)}</tbody></table>"


class Raw:
    """HTML that is already safe, for a table cell."""

    def __init__(self, html_text):
        self.html = html_text


def svg_histogram(buckets, width=240, height=70):
    """Bars for [(low, high, count)], with the range underneath."""
    if not buckets:
        return ""
    top = max(count for _, _, count in buckets) or 1
    bar = width / len(buckets)
    bars = "".join(
        f"<rect class=\"bar\" x=\"{i * bar:.1f}\" y=\"{height - 14 - (count / top) * (height - 16):.1f}\" "
        f"width=\"{max(bar - 1, 1):.1f}\" height=\"{(count / top) * (height - 16):.1f}\" fill=\"{_PALETTE[0]}\">"
        f"<title>{number(low)} to {number(high)}: {number(count)}</title></rect>"
        for i, (low, high, count) in enumerate(buckets))
    labels = (f"<text x=\"0\" y=\"{height - 2}\">{escape(number(buckets[0][0]))}</text>"
              f"<text x=\"{width}\" y=\"{height - 2}\" text-anchor=\"end\">{escape(number(buckets[-1][1]))}</text>")
    return (f"<svg class=\"histogram\" width=\"{width}\" height=\"{height}\" role=\"img\" "
            f"viewBox=\"0 0 {width} {height}\">{bars}{labels}</svg>")


def svg_top_values(values, width=240, row=14):
    """Horizontal bars for [(label, count)]."""
    if not values:
        return ""
    top = max(count for _, count in values) or 1
    label_width = 90
    rows = []
    for i, (label, count) in enumerate(values):
        y = i * row
        length = (count / top) * (width - label_width - 40)
        short = label if len(label) <= 14 else label[:13] + "…"
        rows.append(f"<text x=\"0\" y=\"{y + 10}\">{escape(short)}</text>"
                    f"<rect class=\"bar\" x=\"{label_width}\" y=\"{y + 2}\" width=\"{length:.1f}\" height=\"{row - 4}\" "
                    f"fill=\"{_PALETTE[1]}\"><title>{escape(label)}: {number(count)}</title></rect>"
                    f"<text x=\"{label_width + length + 4:.1f}\" y=\"{y + 10}\">{escape(number(count))}</text>")
    height = row * len(values)
    return (f"<svg class=\"top-values\" width=\"{width}\" height=\"{height}\" role=\"img\" "
            f"viewBox=\"0 0 {width} {height}\">{''.join(rows)}</svg>")


def svg_line_chart(series, width=520, height=260, x_label="epoch"):
    """Lines for {name: [y per step]}, with axes, a legend and the y range."""
    series = {name: values for name, values in series.items() if values}
    if not series:
        return ""
    left, bottom, right, top_pad = 48, 28, 130, 10
    ys = [y for values in series.values() for y in values if y is not None and math.isfinite(y)]
    low, high = min(ys), max(ys)
    high = high if high > low else low + 1
    steps = max(len(values) for values in series.values())
    plot_w, plot_h = width - left - right, height - bottom - top_pad

    def point(i, y):
        x = left + (plot_w * i / max(steps - 1, 1))
        return x, top_pad + plot_h * (1 - (y - low) / (high - low))

    parts = [f"<line x1=\"{left}\" y1=\"{top_pad + plot_h}\" x2=\"{left + plot_w}\" y2=\"{top_pad + plot_h}\" "
             f"stroke=\"#9aa5b1\"/>",
             f"<line x1=\"{left}\" y1=\"{top_pad}\" x2=\"{left}\" y2=\"{top_pad + plot_h}\" stroke=\"#9aa5b1\"/>",
             f"<text x=\"{left - 4}\" y=\"{top_pad + 8}\" text-anchor=\"end\">{escape(number(high, 3))}</text>",
             f"<text x=\"{left - 4}\" y=\"{top_pad + plot_h}\" text-anchor=\"end\">{escape(number(low, 3))}</text>",
             f"<text x=\"{left + plot_w / 2}\" y=\"{height - 6}\" text-anchor=\"middle\">{escape(x_label)} "
             f"(1 to {steps})</text>"]
    for index, (name, values) in enumerate(series.items()):
        color = _PALETTE[index % len(_PALETTE)]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, v) for i, v in enumerate(values)))
        parts.append(f"<polyline class=\"series\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" "
                     f"points=\"{points}\"><title>{escape(name)}</title></polyline>")
        legend_y = top_pad + 12 + index * 16
        parts.append(f"<rect x=\"{left + plot_w + 12}\" y=\"{legend_y - 8}\" width=\"10\" height=\"10\" fill=\"{color}\"/>"
                     f"<text x=\"{left + plot_w + 26}\" y=\"{legend_y}\">{escape(name)} "
                     f"({escape(number(values[-1], 3))})</text>")
    return (f"<svg class=\"line-chart\" width=\"{width}\" height=\"{height}\" role=\"img\" "
            f"viewBox=\"0 0 {width} {height}\">{''.join(parts)}</svg>")


def svg_roc_curve(false_positive_rates, true_positive_rates, size=260):
    """The ROC curve in the unit square, with the diagonal of a random classifier."""
    pad = 30
    side = size - 2 * pad

    def xy(fpr, tpr):
        return pad + fpr * side, pad + (1 - tpr) * side

    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(f, t) for f, t in
                                                      zip(false_positive_rates, true_positive_rates)))
    return (f"<svg class=\"roc\" width=\"{size}\" height=\"{size}\" role=\"img\" viewBox=\"0 0 {size} {size}\">"
            f"<rect x=\"{pad}\" y=\"{pad}\" width=\"{side}\" height=\"{side}\" fill=\"none\" stroke=\"#9aa5b1\"/>"
            f"<line x1=\"{pad}\" y1=\"{pad + side}\" x2=\"{pad + side}\" y2=\"{pad}\" stroke=\"#cbd2d9\" "
            f"stroke-dasharray=\"4 3\"/>"
            f"<polyline class=\"series\" fill=\"none\" stroke=\"{_PALETTE[0]}\" stroke-width=\"2\" points=\"{points}\"/>"
            f"<text x=\"{pad + side / 2}\" y=\"{size - 8}\" text-anchor=\"middle\">false positive rate</text>"
            f"<text x=\"10\" y=\"{pad + side / 2}\" transform=\"rotate(-90 10 {pad + side / 2})\" "
            f"text-anchor=\"middle\">true positive rate</text></svg>")


def markdown_table(headers, rows):
    def cell(value):
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)
    return "\n".join(lines)


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as sink:
        sink.write(text)


def markdown_page(title, text):
    """A Markdown report rendered as a self-contained HTML page."""
    import markdown

    return html_page(title, markdown.markdown(text, extensions=["tables"]))
