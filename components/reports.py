"""Self-contained reports: HTML pages with inline SVG charts, and Markdown, for the KFP dashboard.

Nothing is fetched from the network (no script, style sheet or font), so a report renders in the
dashboard's sandboxed frame and on an air-gapped cluster. Each builder takes plain values or protos
and returns text; the stages write it to their HTML and Markdown artifacts (`write_text`, which redacts
known secret values).
"""
import html
import math

from components.redaction import redact

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
tr.decisive td { background: #fff8e1; font-weight: 600; } .decided { color: #b54708; font-size: 12px; }
svg text { font-size: 10px; fill: #52606d; }
"""
_PALETTE = ["#2f6fde", "#e8743b", "#19a979", "#945ecf", "#ed4a7b", "#13a4b4"]


def escape(value):
    return html.escape(str(value), quote=True)


# Below this a value prints as 0: what float arithmetic leaves of a zero (a z-scored mean, 1e-17).
NEAR_ZERO = 1e-6


def _is_missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value, digits=4):
    """A readable number: integers as such (2007, not 2,007), others to `digits` significant digits
    without an exponent for everyday magnitudes; anything nearer zero than NEAR_ZERO prints as 0."""
    if _is_missing(value):
        return "-"
    if abs(value) < NEAR_ZERO:
        return "0"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    magnitude = math.floor(math.log10(abs(value)))
    if not -6 <= magnitude < 15:
        return f"{value:.{digits}g}"
    text = f"{value:.{max(digits - 1 - magnitude, 0)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def decimals_for(values, digits=4):
    """How many decimals give the largest of `values` `digits` significant digits: one count for a row
    of related numbers (min, mean, median, max), so they print alike."""
    largest = max((abs(v) for v in values if not _is_missing(v) and abs(v) >= NEAR_ZERO), default=0)
    if not largest:
        return 0
    return max(digits - 1 - math.floor(math.log10(largest)), 0)


def fixed(value, decimals):
    """`value` with exactly `decimals` decimals (0.00, not -0.00, near zero)."""
    if _is_missing(value):
        return "-"
    if abs(value) < 0.5 * 10 ** -decimals:
        value = 0.0
    return f"{value:.{decimals}f}"


def nice_ticks(low, high, count=5):
    """About `count` round values (1, 2 or 5 times a power of ten apart) from `low` to `high`."""
    if not high > low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(0.0 if abs(value) < step * 1e-9 else round(value, 12))
        value += step
    return ticks


def log_ticks(low, high):
    """The powers of ten from `low` to `high` (both above 0), with 2 and 5 times them within one decade."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    multiples = (1,) if last - first > 2 else (1, 2, 5)
    ticks = [m * 10 ** p for p in range(first, last + 1) for m in multiples]
    return [t for t in ticks if low * (1 - 1e-9) <= t <= high * (1 + 1e-9)]


def html_page(title, *sections, heading=None):
    """A page titled `title` (in the browser's tab) with `heading` (by default the title) over the sections."""
    body = "\n".join(sections)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n"
            f"<body><h1>{escape(title if heading is None else heading)}</h1>\n{body}\n</body></html>\n")


def html_table(headers, rows, numeric=(), row_classes=()):
    """A table; `rows` hold already-escaped HTML or plain values (escaped here); `row_classes` gives
    rows a CSS class (e.g. "decisive"), in order, "" for none."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers) if any(headers) else ""
    body = []
    classes = list(row_classes) + [""] * (len(rows) - len(row_classes))
    for row, css in zip(rows, classes):
        cells = []
        for i, cell in enumerate(row):
            text = cell.html if isinstance(cell, Raw) else escape(cell)
            cells.append(f"<td class=\"num\">{text}</td>" if i in numeric else f"<td>{text}</td>")
        body.append(f"<tr class=\"{escape(css)}\">{''.join(cells)}</tr>" if css else f"<tr>{''.join(cells)}</tr>")
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{''.join(body)}</tbody></table>"


class Raw:
    """HTML that is already safe, for a table cell."""

    def __init__(self, html_text):
        self.html = html_text


def _legend(names, x, y):
    """Coloured squares with the series' names, one per line from (x, y)."""
    return "".join(
        f"<g class=\"legend-entry\"><rect x=\"{x}\" y=\"{y + i * 16 - 8}\" width=\"10\" height=\"10\" "
        f"fill=\"{_PALETTE[i % len(_PALETTE)]}\"/><text x=\"{x + 14}\" y=\"{y + i * 16}\">{escape(name)}</text></g>"
        for i, name in enumerate(names))


def svg_overlaid_histograms(histograms, width=560, height=170, x_label=""):
    """The histograms of several data sets {name: [(low, high, count)]} on one shared x axis.

    Each is drawn as the outline of its share of examples per unit of x (so a split of 100 examples and
    one of 10,000 compare, whatever their buckets), in its own colour, with a legend: a shift between
    splits shows as curves that do not lie on each other.
    """
    histograms = {name: [b for b in buckets if b[1] >= b[0]] for name, buckets in histograms.items()}
    histograms = {name: buckets for name, buckets in histograms.items() if buckets}
    if not histograms:
        return ""
    left, right, top_pad, bottom = 10, 120, 8, 30
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    low = min(b[0] for buckets in histograms.values() for b in buckets)
    high = max(b[1] for buckets in histograms.values() for b in buckets)
    ticks = nice_ticks(low, high, count=7)
    span = (high - low) or 1.0

    def density(buckets):
        total = sum(count for _, _, count in buckets) or 1
        # A bucket of no width (a constant feature) is drawn one hundredth of the axis wide.
        return [(lo, hi, count / total / max(hi - lo, span / 100)) for lo, hi, count in buckets]

    densities = {name: density(buckets) for name, buckets in histograms.items()}
    peak = max(d for values in densities.values() for _, _, d in values) or 1.0

    def x_of(value):
        return left + plot_w * (value - low) / span

    def y_of(value):
        return top_pad + plot_h * (1 - value / peak)

    base = top_pad + plot_h
    parts = [f"<line x1=\"{left}\" y1=\"{base}\" x2=\"{left + plot_w}\" y2=\"{base}\" stroke=\"#9aa5b1\"/>"]
    for tick in ticks:
        parts.append(f"<g class=\"tick\"><line x1=\"{x_of(tick):.1f}\" y1=\"{base}\" x2=\"{x_of(tick):.1f}\" "
                     f"y2=\"{base + 4}\" stroke=\"#9aa5b1\"/><text x=\"{x_of(tick):.1f}\" y=\"{base + 14}\" "
                     f"text-anchor=\"middle\">{escape(number(tick))}</text></g>")
    if x_label:
        parts.append(f"<text x=\"{left + plot_w / 2}\" y=\"{height - 2}\" text-anchor=\"middle\">"
                     f"{escape(x_label)}</text>")
    for index, (name, values) in enumerate(densities.items()):
        color = _PALETTE[index % len(_PALETTE)]
        points = [f"{x_of(values[0][0]):.1f},{base:.1f}"]
        for lo, hi, value in values:
            points += [f"{x_of(lo):.1f},{y_of(value):.1f}", f"{x_of(hi):.1f},{y_of(value):.1f}"]
        points.append(f"{x_of(values[-1][1]):.1f},{base:.1f}")
        parts.append(f"<polygon class=\"series\" data-series=\"{escape(name)}\" fill=\"{color}\" "
                     f"fill-opacity=\"0.15\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{' '.join(points)}\">"
                     f"<title>{escape(name)}: {number(sum(c for _, _, c in histograms[name]))} values from "
                     f"{escape(number(values[0][0]))} to {escape(number(values[-1][1]))}</title></polygon>")
    parts.append(_legend(list(densities), left + plot_w + 16, top_pad + 10))
    return (f"<svg class=\"histogram\" width=\"{width}\" height=\"{height}\" role=\"img\" "
            f"viewBox=\"0 0 {width} {height}\">{''.join(parts)}</svg>")


def svg_grouped_top_values(values_by_set, limit=8, width=560, bar=9):
    """The most frequent values of a categorical feature in several data sets {name: [(value, count)]}.

    The values are ordered once, by the first data set's counts (then the others' values it lacks), and
    every data set has a bar per value in its own colour, as its share of that data set's values.
    """
    values_by_set = {name: values for name, values in values_by_set.items() if values}
    if not values_by_set:
        return ""
    order = []
    for values in values_by_set.values():
        for value, _ in sorted(values, key=lambda item: -item[1]):
            if value not in order:
                order.append(value)
    order = order[:limit]
    shares = {name: {value: count / (sum(c for _, c in values) or 1) for value, count in values}
              for name, values in values_by_set.items()}
    label_width, legend_width = 110, 120
    plot_w = width - label_width - legend_width - 40
    group = bar * len(shares) + 6
    top = max(share for by_value in shares.values() for share in by_value.values()) or 1.0
    parts = []
    for row, value in enumerate(order):
        y = row * group
        short = value if len(value) <= 16 else value[:15] + "…"
        parts.append(f"<text class=\"category\" x=\"0\" y=\"{y + group / 2 + 1:.1f}\">{escape(short)}</text>")
        for index, (name, by_value) in enumerate(shares.items()):
            share = by_value.get(value, 0.0)
            length = plot_w * share / top
            color = _PALETTE[index % len(_PALETTE)]
            parts.append(f"<rect class=\"bar\" data-series=\"{escape(name)}\" x=\"{label_width}\" "
                         f"y=\"{y + index * bar:.1f}\" width=\"{length:.1f}\" height=\"{bar - 1}\" fill=\"{color}\">"
                         f"<title>{escape(name)}: {escape(value)}: {100 * share:.1f}%</title></rect>"
                         f"<text x=\"{label_width + length + 4:.1f}\" y=\"{y + index * bar + bar - 1:.1f}\">"
                         f"{100 * share:.0f}%</text>")
    height = max(group * len(order), 16 * len(shares))
    parts.append(_legend(list(shares), width - legend_width + 10, 10))
    return (f"<svg class=\"top-values\" width=\"{width}\" height=\"{height}\" role=\"img\" "
            f"viewBox=\"0 0 {width} {height}\">{''.join(parts)}</svg>")


# A positive series whose largest value is at least this many times its smallest is drawn on a log scale.
LOG_SCALE_RATIO = 10


def svg_line_chart(series, width=560, height=260, x_label="epoch", y_label=""):
    """Lines for {name: [y per step]}, with ticks on both axes, a legend with the last values, and a
    log scale when every value is positive and they span LOG_SCALE_RATIO or more."""
    series = {name: values for name, values in series.items() if values}
    if not series:
        return ""
    left, bottom, right, top_pad = 56, 34, 150, 10
    ys = [y for values in series.values() for y in values if y is not None and math.isfinite(y)]
    if not ys:
        return ""
    low, high = min(ys), max(ys)
    logarithmic = low > 0 and high / low >= LOG_SCALE_RATIO
    if logarithmic:
        low, high = 10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(high))
        y_ticks = log_ticks(low, high)
        scale = math.log10
    else:
        y_ticks = nice_ticks(low, high) if high > low else [low]
        step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
        low, high = min(low, y_ticks[0]), max(high, y_ticks[-1])
        if high - low < step / 2:
            high = low + step
        scale = float
    steps = max(len(values) for values in series.values())
    plot_w, plot_h = width - left - right, height - bottom - top_pad
    y_low, y_high = scale(low), scale(high)

    def x_of(i):
        return left + (plot_w * i / max(steps - 1, 1))

    def y_of(y):
        return top_pad + plot_h * (1 - (scale(y) - y_low) / ((y_high - y_low) or 1))

    base = top_pad + plot_h
    parts = [f"<line x1=\"{left}\" y1=\"{base}\" x2=\"{left + plot_w}\" y2=\"{base}\" stroke=\"#9aa5b1\"/>",
             f"<line x1=\"{left}\" y1=\"{top_pad}\" x2=\"{left}\" y2=\"{base}\" stroke=\"#9aa5b1\"/>"]
    for tick in y_ticks:
        y = y_of(tick)
        parts.append(f"<g class=\"y-tick\"><line x1=\"{left}\" y1=\"{y:.1f}\" x2=\"{left + plot_w}\" y2=\"{y:.1f}\" "
                     f"stroke=\"#e4e7eb\"/><text x=\"{left - 4}\" y=\"{y + 3:.1f}\" text-anchor=\"end\">"
                     f"{escape(number(tick, 3))}</text></g>")
    x_ticks = sorted({round(t) for t in nice_ticks(1, steps, count=min(steps, 8)) if 1 <= round(t) <= steps}
                     | {1, steps})
    for tick in x_ticks:
        x = x_of(tick - 1)
        parts.append(f"<g class=\"x-tick\"><line x1=\"{x:.1f}\" y1=\"{base}\" x2=\"{x:.1f}\" y2=\"{base + 4}\" "
                     f"stroke=\"#9aa5b1\"/><text x=\"{x:.1f}\" y=\"{base + 14}\" "
                     f"text-anchor=\"middle\">{tick}</text></g>")
    parts.append(f"<text x=\"{left + plot_w / 2}\" y=\"{height - 4}\" text-anchor=\"middle\">{escape(x_label)}</text>")
    if y_label or logarithmic:
        label = f"{y_label} (log scale)" if logarithmic else y_label
        parts.append(f"<text class=\"y-label\" x=\"12\" y=\"{top_pad + plot_h / 2}\" text-anchor=\"middle\" "
                     f"transform=\"rotate(-90 12 {top_pad + plot_h / 2})\">{escape(label.strip())}</text>")
    for index, (name, values) in enumerate(series.items()):
        color = _PALETTE[index % len(_PALETTE)]
        points = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in enumerate(values)
                          if v is not None and math.isfinite(v) and (v > 0 or not logarithmic))
        parts.append(f"<polyline class=\"series\" data-series=\"{escape(name)}\" fill=\"none\" stroke=\"{color}\" "
                     f"stroke-width=\"2\" points=\"{points}\"><title>{escape(name)}</title></polyline>")
    parts.append(_legend([f"{name} ({number(values[-1], 3)})" for name, values in series.items()],
                         left + plot_w + 12, top_pad + 12))
    scale_class = "log" if logarithmic else "linear"
    return (f"<svg class=\"line-chart {scale_class}\" width=\"{width}\" height=\"{height}\" role=\"img\" "
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
            f"<polyline class=\"series\" fill=\"none\" stroke=\"{_PALETTE[0]}\" stroke-width=\"2\" "
            f"points=\"{points}\"/>"
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
    """Writes a report, with every known secret value redacted (components.redaction)."""
    with open(path, "w", encoding="utf-8") as sink:
        sink.write(redact(text))


def markdown_page(title, text):
    """A Markdown report rendered as a self-contained HTML page, headed once: by the report's own
    first-level heading when it opens with one (the tab is titled `title`), else by `title`."""
    import markdown

    first, _, rest = text.lstrip().partition("\n")
    if first.startswith("# "):
        return html_page(title, markdown.markdown(rest, extensions=["tables"]), heading=first[2:].strip())
    return html_page(title, markdown.markdown(text, extensions=["tables"]))
