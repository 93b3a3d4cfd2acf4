"""Reads a report page as a person sees it: its headings, its tables' cells and its charts' series.

A small reader on the standard library's HTML parser, so tests can assert "the eval column follows the
train column" or "this chart draws train and eval" rather than search for fragments of markup.
"""
from html.parser import HTMLParser


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.headings, self.tables, self.charts, self.texts = [], [], [], []
        self._heading = None
        self._table_stack, self._row, self._cell = [], None, None
        self._chart, self._open_marks = None, []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("style", "title") and self._chart is None:
            self._skip += 1
        elif tag in ("h1", "h2", "h3"):
            self._heading = [tag, ""]
        elif tag == "table":
            self._table_stack.append([])
        elif tag == "tr" and self._table_stack:
            self._row = {"class": attrs.get("class", ""), "cells": []}
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        elif tag == "svg":
            self._chart = {"class": attrs.get("class", ""), "series": [], "texts": [], "marks": []}
            self._open_marks = []
        elif self._chart is not None:
            if attrs.get("data-series") is not None:
                self._chart["series"].append(attrs["data-series"])
            mark = {"tag": tag, "class": attrs.get("class", ""), "attrs": attrs, "text": ""}
            self._chart["marks"].append(mark)
            self._open_marks.append(mark)

    def handle_endtag(self, tag):
        if tag in ("style", "title") and self._skip:
            self._skip -= 1
        elif tag in ("h1", "h2", "h3") and self._heading:
            self.headings.append((self._heading[0], " ".join(self._heading[1].split())))
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row["cells"].append(" ".join(self._cell.split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table_stack[-1].append(self._row)
            self._row = None
        elif tag == "table" and self._table_stack:
            self.tables.append(self._table_stack.pop())
        elif tag == "svg" and self._chart is not None:
            self.charts.append(self._chart)
            self._chart = None
        elif self._chart is not None and self._open_marks:
            self._open_marks.pop()

    def handle_data(self, data):
        if self._skip:
            return
        if self._chart is not None:
            if data.strip() and self._open_marks and self._open_marks[-1]["tag"] == "text":
                self._open_marks[-1]["text"] += data.strip()
                self._chart["texts"].append(data.strip())
            return
        if self._heading is not None:
            self._heading[1] += data
        if self._cell is not None:
            self._cell += data
        if data.strip():
            self.texts.append(" ".join(data.split()))


def read_page(html):
    """The page's headings [(tag, text)], tables [[{"class", "cells"}]], charts and visible text
    (outside charts), in document order. A chart has its "class", the "series" its marks name
    (data-series), the "texts" it writes (ticks, labels, legend; not tooltips) and its "marks"
    [{"tag", "class", "attrs", "text"}]."""
    page = _Page()
    page.feed(html)
    page.close()
    return page


def table_with_header(page, first_header):
    """The rows (cell texts) of the first table whose header row starts with `first_header`."""
    for table in page.tables:
        if table and table[0]["cells"] and table[0]["cells"][0] == first_header:
            return [row["cells"] for row in table]
    raise AssertionError(f"no table headed {first_header!r}: {[t[0]['cells'] for t in page.tables if t]}")
