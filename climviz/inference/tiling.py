"""Run a segmentation network on grids of any size: small grids padded, large ones tiled.

The climviz networks accept any grid of at least 32 x 32 cells (they pad internally
to a multiple of their downsampling factor, wrapping around in longitude), so a
model trained on one grid predicts on another directly. Two cases need help:

* **Grids smaller than 32 cells** in latitude or longitude are padded here first
  (wrapping around in longitude, replicating the edge rows in latitude) and the
  logits are cropped back.
* **Very large grids** (when the whole field does not fit in memory) can be cut into
  overlapping tiles (:func:`tiled_logits`). Longitude is periodic: the field is
  wrapped around by ``overlap`` cells on both sides before cutting, so a tile
  straddling the 0/360 degree seam sees the cells on the other side. Each output
  cell is taken from the tiles in which it lies at least ``overlap`` cells away
  from an inner tile edge (averaged where such "cores" meet), so for a network
  whose receptive field reaches at most ``overlap`` cells the tiled result equals
  the untiled one on a periodic domain. Networks with larger receptive fields
  (DeepLabv3+ pools globally in its ASPP branch) give an approximation that
  improves with the tile size; use tiles as large as memory allows.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["MIN_GRID", "padded_logits", "tile_starts", "tiled_logits"]

#: smallest grid (cells) the climviz networks accept; smaller grids are padded here
MIN_GRID = 32


def padded_logits(
    forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, min_size: int = MIN_GRID
) -> torch.Tensor:
    """Logits of ``forward`` on ``x`` ``(N, C, H, W)``, padding grids below ``min_size``.

    Longitude (last axis) is padded by wrapping around, latitude by replicating the
    edge rows (half above, half below); the logits are cropped back to ``(H, W)``.

    Examples
    --------
    A stand-in network that records the shapes it is called with and returns its input
    as 3 "logits": a 16 x 24 grid is run as 32 x 32 and cropped back exactly:

    >>> import torch
    >>> seen = []
    >>> def forward(t):
    ...     seen.append(tuple(t.shape))
    ...     return t.repeat(1, 3, 1, 1)
    >>> x = torch.arange(16 * 24.0).reshape(1, 1, 16, 24)
    >>> y = cv.inference.padded_logits(forward, x)
    >>> seen, tuple(y.shape), torch.equal(y[:, :1], x)
    ([(1, 1, 32, 32)], (1, 3, 16, 24), True)
    """
    h, w = x.shape[-2:]
    ph, pw = max(0, min_size - h), max(0, min_size - w)
    if not ph and not pw:
        return forward(x)
    if pw:
        reps = -(-(w + pw) // w)  # wrap around as many times as needed
        x = torch.cat([x] * reps, dim=-1)[..., : w + pw]
    top = ph // 2
    if ph:
        x = F.pad(x, (0, 0, top, ph - top), mode="replicate")
    return forward(x)[..., top : top + h, :w]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start indices of tiles of ``tile`` cells covering ``length`` cells.

    Consecutive tiles overlap by ``2 * overlap`` cells, so the cores
    ``[start + overlap, start + tile - overlap)`` of neighbouring tiles touch; the
    first and last tile are flush with the ends of the axis.
    """
    if tile >= length:
        return [0]
    step = tile - 2 * overlap
    if step <= 0:
        raise ValueError(f"tile size {tile} must exceed twice the overlap {overlap}")
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _core_weight(start: int, size: int, length: int, overlap: int, device, dtype) -> torch.Tensor:
    """1 inside a tile's core, 0 in margins of ``overlap`` cells at inner tile edges."""
    w = torch.ones(size, device=device, dtype=dtype)
    if start > 0:
        w[:overlap] = 0
    if start + size < length:
        w[size - overlap :] = 0
    return w


def tiled_logits(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: Sequence[int],
    overlap: int = 16,
) -> torch.Tensor:
    """Logits of ``forward`` on ``x`` ``(N, C, lat, lon)`` computed tile by tile.

    Parameters
    ----------
    forward
        Maps ``(N, C, h, w)`` to logits ``(N, K, h, w)``.
    x
        Input fields, longitude on the last axis and periodic.
    tile
        Tile size ``(lat, lon)`` in cells (each at least :data:`MIN_GRID` for the
        climviz networks).
    overlap
        Margin in cells discarded at inner tile edges (and the width of the
        longitude wrap-around).

    Returns
    -------
    torch.Tensor
        ``(N, K, lat, lon)`` logits (float32).

    Examples
    --------
    A 64 x 96 grid in 32 x 48 tiles with an 8-cell margin: 3 x 3 tiles, stitched back
    into the same logits as one pass for a network without spatial context (here the
    network returns its input):

    >>> import torch
    >>> seen = []
    >>> def forward(t):
    ...     seen.append(tuple(t.shape))
    ...     return t.repeat(1, 3, 1, 1)
    >>> x = torch.randn(1, 2, 64, 96)
    >>> y = cv.inference.tiled_logits(forward, x, tile=(32, 48), overlap=8)
    >>> len(seen), seen[0], tuple(y.shape), torch.equal(y, forward(x))
    (9, (1, 2, 32, 48), (1, 6, 64, 96), True)
    """
    th, tw = int(tile[0]), int(tile[1])
    h, w = x.shape[-2:]
    if th >= h and tw >= w:
        return forward(x)
    overlap = int(overlap)
    if tw < w:
        # wrap longitude so tiles at the seam see the other side of the globe
        x = torch.cat([x[..., w - overlap :], x, x[..., :overlap]], dim=-1)
    wp = x.shape[-1]
    rows = tile_starts(h, th, overlap)
    cols = tile_starts(wp, tw, overlap) if tw < w else [0]
    tw_eff = min(tw, wp)
    th_eff = min(th, h)
    out: torch.Tensor | None = None
    weight = torch.zeros(h, wp, device=x.device, dtype=torch.float32)
    for r in rows:
        wr = _core_weight(r, th_eff, h, overlap, x.device, torch.float32)
        for c in cols:
            logits = forward(x[..., r : r + th_eff, c : c + tw_eff]).float()
            if out is None:
                out = torch.zeros(x.shape[0], logits.shape[1], h, wp, device=x.device)
            wc = _core_weight(c, tw_eff, wp, overlap, x.device, torch.float32)
            wt = wr[:, None] * wc[None, :]
            out[..., r : r + th_eff, c : c + tw_eff] += logits * wt
            weight[r : r + th_eff, c : c + tw_eff] += wt
    assert out is not None  # tile_starts gives at least one row and one column
    out = out / weight
    if tw < w:
        out = out[..., overlap : overlap + w]
    return out
