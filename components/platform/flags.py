"""Flag strings: the one parser for the option strings the pipeline passes around (`--beam-args`)."""
import shlex

from components.errors import StageError


def split_flags(text, flag="--beam-args"):
    """The flags in `text` as a shell would split them (a list is taken as it is); StageError naming `flag`
    when the string cannot be read."""
    if not isinstance(text, str):
        return list(text or [])
    try:
        return shlex.split(text)
    except ValueError as error:
        raise StageError(f"{flag} cannot be read ({error}): quote it as a shell would.") from None


def join_flags(flags):
    """Flags as one string that `split_flags` reads back as they are."""
    return shlex.join(flags)
