"""The CSV dialect ingest reads: UTF-8 text, a header line of column names, one delimiter between fields.

The delimiter is `,` (the default), `;`, a tab or `|`, given by `--csv-delimiter` and the pipeline
parameter `csv_delimiter` for the data files and the serving sample alike. A tab may be given as `tab`,
`\\t` or a tab character; the spec holds the delimiter's name (`,`, `;`, `|` or `tab`), which reads the
same in every dashboard. A UTF-8 byte-order mark at the start of a file is not part of its first column's
name. Nothing here imports Beam or pyarrow: the command line checks the flag before anything runs.
"""
from components.errors import StageError

FLAG = "--csv-delimiter"
DEFAULT_DELIMITER = ","
TAB = "tab"
# Every accepted spelling -> the delimiter's name; each name -> the character that separates fields.
_NAMES = {",": ",", ";": ";", "|": "|", "\t": TAB, "\\t": TAB, TAB: TAB}
_CHARACTERS = {",": ",", ";": ";", "|": "|", TAB: "\t"}
_PLURALS = {",": "commas", ";": "semicolons", "|": "pipes", "\t": "tabs"}


def delimiter_name(text, flag=FLAG):
    """The name of the delimiter `text` gives: `,`, `;`, `|` or `tab` (empty text: the default `,`).

    Raises StageError, naming `flag`, for anything else.
    """
    if text == "":
        return DEFAULT_DELIMITER
    name = _NAMES.get(text) or _NAMES.get(text.strip().lower())
    if name is None:
        raise StageError(f"{flag} {text!r} is not a delimiter ingest reads: give ',', ';', '|' or a tab "
                         "(as tab or '\\t').")
    return name


def delimiter(text, flag=FLAG):
    """The one character that separates fields, from any spelling `delimiter_name` accepts."""
    return _CHARACTERS[delimiter_name(text, flag)]


def flag_for(character):
    """The flag that reads files separated by `character`, as a user types it: `--csv-delimiter ';'`."""
    name = _NAMES[character]
    return f"{FLAG} {name if name == TAB else repr(name)}"


def plural(character):
    """`character` in a sentence: 'commas', 'semicolons', 'tabs' or 'pipes'."""
    return _PLURALS[character]


def one_column_hint(names, character):
    """The delimiter a header read as one column seems to use instead of `character`, or None.

    A header of one column holding `;` or a tab (any accepted delimiter but `character`) is a file
    separated by that delimiter, read with the wrong one.
    """
    if len(names) != 1:
        return None
    return next((other for other in (";", "\t", ",", "|") if other != character and other in names[0]), None)
