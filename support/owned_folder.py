"""A temporary folder owned by a server's own OS user (`rabbitmq`, `postgres`): spare servers
keep their data, logs and sockets there, and it is removed at the end unless
RENEWALS_KEEP_SPARE is set (to read a failed run's logs)."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def give_to(user: str, path: Path) -> None:
    """`path`, and everything under it, now belongs to `user` (and that user's group)."""
    shutil.chown(path, user, user)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            shutil.chown(os.path.join(root, name), user, user)


@contextmanager
def owned_folder(prefix: str, user: str) -> Iterator[Path]:
    """A fresh folder under the temporary directory, mode 0700, owned by `user`."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        give_to(user, folder)
        yield folder
    finally:
        if not os.environ.get("RENEWALS_KEEP_SPARE"):
            shutil.rmtree(folder, ignore_errors=True)
