"""The documents store: PDFs on disk, named by the sha256 of their bytes.

Content-addressed: the same bytes are stored once, a file's name proves its content, and a
file is never rewritten. Writes go to a temporary file first and are renamed into place,
so a reader never sees half a document. An S3-compatible store is the next step past one
machine: the same three calls over a bucket.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from core.errors import NotFound

SHA256_LENGTH = 64


class DocumentStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        if len(sha256) != SHA256_LENGTH or any(c not in "0123456789abcdef" for c in sha256):
            raise NotFound("no such document content")
        return self.root / sha256[:2] / sha256

    def put(self, content: bytes) -> str:
        """Stores the bytes (once) and returns their sha256."""
        digest = hashlib.sha256(content).hexdigest()
        path = self.path_of(digest)
        if path.exists() and self.intact(digest):
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def read(self, sha256: str) -> bytes:
        path = self.path_of(sha256)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"the content {sha256} is missing from the documents store") from None

    def intact(self, sha256: str) -> bool:
        """The file is there and its bytes still hash to its name."""
        path = self.path_of(sha256)
        try:
            with path.open("rb") as f:
                return hashlib.file_digest(f, "sha256").hexdigest() == sha256
        except FileNotFoundError:
            return False
