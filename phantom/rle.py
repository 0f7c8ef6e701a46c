"""A vectorised DICOM RLE Lossless encoder (PackBits per row, one segment per byte plane).

pydicom's own RLE encoder works row by row in Python (about 10 ms per frame); this one encodes a frame
in well under a millisecond with numpy, and pydicom's decoder reads the result.
"""

from __future__ import annotations

import numpy as np

MAX_PACKET = 128


def _chunks(pos: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split runs (pos, length) into chunks of at most MAX_PACKET bytes."""
    n = -(-length // MAX_PACKET)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    cpos = np.repeat(pos, n) + MAX_PACKET * k
    clen = np.minimum(MAX_PACKET, np.repeat(length, n) - MAX_PACKET * k)
    return cpos, clen


def packbits_rows(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PackBits-encode a 2-D uint8 array, never letting a packet cross a row boundary.

    Returns the encoded bytes and the offset at which each row's packets start (plus the total length).
    """
    rows, cols = plane.shape
    d = np.ascontiguousarray(plane, dtype=np.uint8).ravel()
    n = d.size
    start = np.ones(n, dtype=bool)
    start[1:] = d[1:] != d[:-1]
    start[::cols] = True
    run_pos = np.flatnonzero(start)
    run_len = np.diff(np.append(run_pos, n))
    rep = run_len >= 3
    in_rep = np.repeat(rep, run_len)
    # literal stretches: maximal runs of bytes outside replicate runs, cut at row starts
    lit_start = ~in_rep & (np.concatenate([[True], in_rep[:-1]]) | start & (np.arange(n) % cols == 0))
    lit_pos = np.flatnonzero(lit_start)
    lit_end_mask = ~in_rep & (np.concatenate([in_rep[1:], [True]]) | (np.arange(1, n + 1) % cols == 0))
    lit_len = np.flatnonzero(lit_end_mask) + 1 - lit_pos

    rpos, rlen = _chunks(run_pos[rep], run_len[rep])
    lpos, llen = _chunks(lit_pos, lit_len)
    is_rep = np.concatenate([rlen >= 2, np.zeros(len(lpos), dtype=bool)])
    pos = np.concatenate([rpos, lpos])
    length = np.concatenate([rlen, llen])
    order = np.argsort(pos, kind="stable")
    pos, length, is_rep = pos[order], length[order], is_rep[order]

    size = np.where(is_rep, 2, 1 + length)
    off = np.cumsum(size) - size
    out = np.zeros(int(size.sum()), dtype=np.uint8)
    out[off] = np.where(is_rep, 257 - length, length - 1).astype(np.uint8)
    out[off[is_rep] + 1] = d[pos[is_rep]]
    lit = ~is_rep
    lp, ll, lo = pos[lit], length[lit], off[lit] + 1
    total = int(ll.sum())
    within = np.arange(total) - np.repeat(np.cumsum(ll) - ll, ll)
    out[np.repeat(lo, ll) + within] = d[np.repeat(lp, ll) + within]
    row_first = pos % cols == 0
    return out, np.append(off[row_first], out.size)


def encode_frames(frames: np.ndarray) -> list[bytes]:
    """RLE Lossless frames of 16-bit single-sample images ``(F, H, W)``: header + MSB + LSB segment."""
    f = np.ascontiguousarray(frames, dtype=np.uint16)
    n, h, w = f.shape
    encoded = [
        packbits_rows((f >> 8).astype(np.uint8).reshape(n * h, w)),
        packbits_rows((f & 0xFF).astype(np.uint8).reshape(n * h, w)),
    ]
    out = []
    for k in range(n):
        segments = []
        for data, row_off in encoded:
            seg = data[row_off[k * h] : row_off[(k + 1) * h]].tobytes()
            segments.append(seg + b"\0" * (len(seg) & 1))
        header = np.zeros(16, dtype="<u4")
        header[0] = len(segments)
        header[1] = 64
        header[2] = 64 + len(segments[0])
        out.append(header.tobytes() + b"".join(segments))
    return out
