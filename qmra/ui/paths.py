"""Which server paths the page may open or write to.

The page may name any path inside the folder the server was started in (after symbolic links are
followed, so a link inside that points outside is refused too), the video or frame folder given on
the command line, and the export folder given on the command line (and anything inside it).
Everything else is refused: a page (or another site that reaches the local port) cannot read or
write the rest of the disk.
"""

from __future__ import annotations

from pathlib import Path

from qmra.errors import QmraError


class PathRefused(QmraError):
    """A path outside what the server may touch (HTTP 403)."""


class PathPolicy:
    def __init__(self, root: Path, exact: list[Path] = (), trees: list[Path] = ()) -> None:  # type: ignore[assignment]
        self.root = root.resolve()
        self.exact = [p.resolve() for p in exact]
        self.trees = [self.root] + [p.resolve() for p in trees]

    def resolve(self, text: object, what: str = "path") -> Path:
        """The page's ``text`` (relative paths are taken from the start folder) → an allowed absolute path."""
        if not isinstance(text, str) or not text.strip():
            raise QmraError(f"give a {what}")
        if "\x00" in text:
            raise QmraError(f"{what} {text!r} holds a NUL character")
        path = Path(text.strip()).expanduser()
        if not path.is_absolute():
            path = self.root / path
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as error:  # a symlink loop
            raise QmraError(f"cannot use {what} {text}: {error}") from None
        if resolved in self.exact or any(resolved.is_relative_to(tree) for tree in self.trees):
            return resolved
        raise PathRefused(f"{text} is outside the folder qmra ui was started in ({self.root}); give it on the command line "
                          "(qmra ui SOURCE, --out FOLDER) or start qmra ui in a folder above it")
