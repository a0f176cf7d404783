"""Reading IDX files (the MNIST format): a big-endian header, then raw unsigned bytes."""

import struct
from typing import Tuple

import numpy as np

_UNSIGNED_BYTE = 0x08


def parse_idx(content: bytes) -> np.ndarray:
    """Decode an uncompressed IDX file of unsigned bytes into a uint8 array of its shape.

    Raises ValueError saying what is wrong with the header or the length.
    """
    if len(content) < 4:
        raise ValueError(f"too short for an IDX header ({len(content)} bytes)")
    zero, dtype_code, n_dims = struct.unpack(">HBB", content[:4])
    if zero != 0 or dtype_code != _UNSIGNED_BYTE or not 1 <= n_dims <= 4:
        raise ValueError(
            f"not an IDX file of unsigned bytes (magic {content[:4].hex()}, "
            f"expected 000008 followed by the number of dimensions)"
        )
    header_size = 4 + 4 * n_dims
    if len(content) < header_size:
        raise ValueError(f"header truncated ({len(content)} of {header_size} bytes)")
    shape: Tuple[int, ...] = struct.unpack(f">{n_dims}I", content[4:header_size])
    expected = header_size + int(np.prod(shape, dtype=np.int64))
    if len(content) != expected:
        raise ValueError(
            f"header announces shape {shape} ({expected} bytes) but the file has {len(content)} bytes"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)
