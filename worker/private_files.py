"""Every file we write (the console's users file and key, exports, documents) goes through a new
private temporary file beside its target: a random name, created exclusively with mode 0600 and
never through a link, then renamed into place. No reader sees half a file, and a link planted
where the temporary file would be is never followed."""

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@contextmanager
def private_file(path: Path, *, replace: bool = True) -> Iterator[IO[str]]:
    """A text stream whose contents become `path` when the block ends cleanly (nothing changes
    otherwise). With `replace=False` an existing `path` is never overwritten: FileExistsError."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, _FLAGS, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            os.fchmod(stream.fileno(), 0o600)  # whatever the umask
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        if replace:
            os.replace(temporary, path)  # a link at `path` is replaced, not followed
        else:
            os.link(temporary, path)  # refuses an existing file (or link) at `path`
            os.unlink(temporary)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_private(path: Path, text: str, *, replace: bool = True) -> None:
    """Write `text` to `path` through a private temporary file (see `private_file`)."""
    with private_file(path, replace=replace) as stream:
        stream.write(text)
