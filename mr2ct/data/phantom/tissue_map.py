"""An anatomy sampled on a voxel grid: tissue classes on a finer sub-grid, structure labels per voxel."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from mr2ct.data.phantom.anatomy import Anatomy, _Structure
from mr2ct.data.phantom.grids import Grid
from mr2ct.data.phantom.shapes import _FAR, _box_corners, _floats, _Segment, _smin
from mr2ct.data.phantom.tissues import Tissue
from mr2ct.labels import NUM_CLASSES


_MUSCLE_MARGIN = 5.0  # muscles grow this far into free space inside the fascia
_FAT_PLANE = 1.2  # fat between two muscles whose distances differ by less (mm)


class _Canvas:
    """Body-frame coordinates of blocks of a (sub-)grid's slices ``k0:k1``."""

    def __init__(self, grid: Grid, anatomy: Anatomy, k0: int, k1: int):
        # index (i, j, k) -> body: R^T (origin + M idx - position)
        rt = anatomy.rotation.T
        self.a = rt @ grid.matrix
        self.b = rt @ (np.asarray(grid.origin) - anatomy.position) + self.a[:, 2] * k0
        self.a_inv = np.linalg.inv(self.a)
        self.shape = (k1 - k0, grid.shape[1], grid.shape[2])

    def index_box(self, lo, hi, pad=0.0):
        """Index range ``(lo, hi)`` as (i, j, k) of the voxels in a padded body box, or None."""
        corners = _box_corners(np.asarray(lo) - pad, np.asarray(hi) + pad)
        u = (corners - self.b) @ self.a_inv.T
        first = np.maximum(np.floor(u.min(axis=0)).astype(int), 0)
        last = np.minimum(np.ceil(u.max(axis=0)).astype(int) + 1, self.shape[::-1])
        if np.any(last <= first):
            return None
        return first, last

    def segment_ranges(self, a, b, radius, first, last) -> list:
        """Disjoint index ranges covering the voxels within ``radius`` of the segment ``a``-``b``.

        An oblique tube's bounding box is mostly empty; slabs along the axis
        it runs furthest along, each boxed on its own, fit it much tighter.
        """
        ua = self.a_inv @ (np.asarray(a) - self.b)
        ub = self.a_inv @ (np.asarray(b) - self.b)
        h = radius * np.linalg.norm(self.a_inv, axis=1)
        lo = np.maximum(np.floor(np.minimum(ua, ub) - h).astype(int), first)
        hi = np.minimum(np.ceil(np.maximum(ua, ub) + h).astype(int) + 1, last)
        if np.any(hi <= lo):
            return []
        span = np.abs(ub - ua)
        axis = int(np.argmax(span / h))
        if span[axis] < 1.5 * h[axis]:
            return [(lo, hi)]
        step = max(2, int(math.ceil(h[axis])))
        du = ub[axis] - ua[axis]
        ranges = []
        for s0 in range(int(lo[axis]), int(hi[axis]), step):
            s1 = min(s0 + step, int(hi[axis]))
            ta = (s0 - h[axis] - ua[axis]) / du
            tb = (s1 - 1 + h[axis] - ua[axis]) / du
            t0, t1 = max(min(ta, tb), 0.0), min(max(ta, tb), 1.0)
            if t0 > t1:
                continue
            p0, p1 = ua + t0 * (ub - ua), ua + t1 * (ub - ua)
            f = np.maximum(np.floor(np.minimum(p0, p1) - h).astype(int), lo)
            l_ = np.minimum(np.ceil(np.maximum(p0, p1) + h).astype(int) + 1, hi)
            f[axis], l_[axis] = s0, s1
            if np.all(l_ > f):
                ranges.append((f, l_))
        return ranges

    def coords(self, first, last):
        """Body coordinates (x, y, z float32 arrays) of an index range."""
        i = np.arange(first[0], last[0], dtype=np.float32)[None, None, :]
        j = np.arange(first[1], last[1], dtype=np.float32)[None, :, None]
        k = np.arange(first[2], last[2], dtype=np.float32)[:, None, None]
        a, b = self.a, self.b
        return [
            (float(a[m, 0]) * i + float(a[m, 1]) * j) + (float(a[m, 2]) * k + float(b[m])) for m in range(3)
        ]


def _slices(first, last, origin=(0, 0, 0)) -> tuple:
    """Array slices [k, j, i] of an (i, j, k) index range, relative to ``origin``."""
    return tuple(slice(int(first[m] - origin[m]), int(last[m] - origin[m])) for m in (2, 1, 0))


def _evaluate(structure: _Structure, canvas: _Canvas, pad: float = 0.0):
    """A structure on its block of the canvas.

    Returns:
        None if it is nowhere near, else ``(slices, d, inner, marrow)``: the
        block's slices in the canvas, the signed distance, and for bones the
        distance to the marrow surface and the marrow tissue (else None).
    """
    block = canvas.index_box(*structure.box(), pad=pad)
    if block is None:
        return None
    first, last = block
    shape = tuple(int(last[m] - first[m]) for m in (2, 1, 0))
    d = np.full(shape, _FAR, dtype=np.float32)
    bone = structure.cortex is not None
    if bone:
        inner = np.full(shape, _FAR, dtype=np.float32)
        marrow = np.zeros(shape, dtype=np.uint8)

    def ranges_of(part, reach):
        if isinstance(part, _Segment):
            a, b = np.asarray(part.a), np.asarray(part.b)
            if structure.pose is not None:
                pivot, rot = structure.pose
                a, b = pivot + rot @ (a - pivot), pivot + rot @ (b - pivot)
            radius = max(*part.ra, *part.rb, *part.cap) + reach
            return canvas.segment_ranges(a, b, radius, first, last)
        sub = canvas.index_box(*structure.part_box(part), pad=reach)
        if sub is None:
            return []
        f, l_ = np.maximum(sub[0], first), np.minimum(sub[1], last)
        return [(f, l_)] if np.all(l_ > f) else []

    def coords(f, l_):
        x, y, z = canvas.coords(f, l_)
        if structure.pose is not None:
            (px, py, pz), rot = _floats(structure.pose[0]), structure.pose[1]
            dx, dy, dz = x - px, y - py, z - pz  # local = pivot + R^T (p - pivot)
            x, y, z = (float(rot[0, m]) * dx + float(rot[1, m]) * dy + float(rot[2, m]) * dz + (px, py, pz)[m]
                       for m in range(3))
        return _slices(f, l_, first), (x, y, z)

    for n, part in enumerate(structure.parts):
        for f, l_ in ranges_of(part, pad + structure.blend):
            sl, xyz = coords(f, l_)
            dp = part.sdf(*xyz)
            d[sl] = _smin(d[sl], dp, structure.blend)
            if bone:
                ip = dp + float(structure.cortex[n])
                marrow[sl] = np.where(ip < inner[sl], np.uint8(structure.marrow[n]), marrow[sl])
                inner[sl] = _smin(inner[sl], ip, structure.blend * 0.5)
    if structure.carve and structure.pose is not None:
        raise NotImplementedError("carving a posed structure")
    for shape_, gap in structure.carve:
        for f, l_ in ranges_of(shape_, gap):
            sl, xyz = coords(f, l_)
            d[sl] = np.maximum(d[sl], gap - shape_.sdf(*xyz))
    if bone:
        return _slices(first, last), d, inner, marrow
    return _slices(first, last), d, None, None


def _render_chunk(anatomy: Anatomy, grid: Grid, k0: int, k1: int):
    canvas = _Canvas(grid, anatomy, k0, k1)
    shape = canvas.shape
    tissue = np.zeros(shape, dtype=np.uint8)
    labels = np.zeros(shape, dtype=np.uint8)

    # body envelope: air outside, skin, fat inside
    env = np.full(shape, _FAR, dtype=np.float32)
    blend = 20.0
    deep_enough = -(anatomy.fat_mm + blend + _MUSCLE_MARGIN)  # envelope details no longer matter
    for n, part in enumerate(anatomy.envelope):
        block = canvas.index_box(*part.box(), pad=blend)
        if block is None:
            continue
        sl = _slices(*block)
        x, y, z = canvas.coords(*block)
        if n == 0:  # the trunk: everywhere
            env[sl] = _smin(env[sl], part.sdf(x, y, z), blend)
            continue
        region = env[sl]
        todo = region > deep_enough
        if not todo.any():
            continue
        pick = [np.broadcast_to(c, region.shape)[todo] for c in (x, y, z)]
        region[todo] = _smin(region[todo], part.sdf(*pick), blend)
    tissue[env <= 0] = Tissue.FAT
    tissue[(env <= 0) & (env > -anatomy.skin_mm)] = Tissue.SOFT_TISSUE
    deep = env < -anatomy.fat_mm

    # muscles compete for the space inside the fascia
    best = np.full(shape, _FAR, dtype=np.float32)
    second = np.full(shape, _FAR, dtype=np.float32)
    owner = np.zeros(shape, dtype=np.int16)
    # structures of one muscle name (both sides are separate) are merged by name
    groups = {}
    for m in anatomy.muscles:
        groups.setdefault(m.name, []).append(m)
    owners = []
    for name, structures in groups.items():
        owners.append(structures[0])
        index = len(owners)
        results = [r for r in (_evaluate(m, canvas, pad=_MUSCLE_MARGIN + _FAT_PLANE) for m in structures) if r]
        if not results:
            continue
        # one distance over the union of the bundles' blocks, so bundles of
        # one muscle do not leave fat planes between them
        first = [min(r[0][m].start for r in results) for m in range(3)]
        last = [max(r[0][m].stop for r in results) for m in range(3)]
        d = np.full([b - a for a, b in zip(first, last)], _FAR, dtype=np.float32)
        for sl, dm, _, _ in results:
            rel = tuple(slice(q.start - a, q.stop - a) for q, a in zip(sl, first))
            d[rel] = np.minimum(d[rel], dm)
        sl = tuple(slice(a, b) for a, b in zip(first, last))
        b_, s_, o_ = best[sl], second[sl], owner[sl]
        new = d < b_
        s_[...] = np.where(new, b_, np.minimum(s_, d))
        b_[...] = np.where(new, d, b_)
        o_[...] = np.where(new, index, o_)
    grown = deep & (best < _MUSCLE_MARGIN) & (second - best > _FAT_PLANE)
    lut_label = np.array([0] + [o.label for o in owners], dtype=np.uint8)
    lut_tissue = np.array([Tissue.FAT] + [o.tissue for o in owners], dtype=np.uint8)
    labels[grown] = lut_label[owner[grown]]
    tissue[grown] = lut_tissue[owner[grown]]

    # fillers (bowel) only where nothing else is; organs override muscles
    for structure in anatomy.fillers:
        result = _evaluate(structure, canvas)
        if result is None:
            continue
        sl, d, _, _ = result
        free = (d < 0) & (labels[sl] == 0) & (tissue[sl] == Tissue.FAT) & deep[sl]
        tissue[sl][free] = structure.tissue
    for structure in anatomy.organs:
        result = _evaluate(structure, canvas)
        if result is None:
            continue
        sl, d, _, _ = result
        inside = (d < 0) & (env[sl] < -anatomy.skin_mm)
        tissue[sl][inside] = structure.tissue
        labels[sl][inside] = 0

    # bones override everything
    for structure in anatomy.bones:
        result = _evaluate(structure, canvas)
        if result is None:
            continue
        sl, d, inner, marrow = result
        inside = d < 0
        labels[sl][inside] = structure.label
        t = np.where(inner < 0, marrow, np.uint8(Tissue.CORTICAL_BONE))
        tissue[sl][inside] = t[inside]
    return tissue, labels


def _supersampling(grid: Grid) -> tuple:
    """Sub-voxels per voxel (k, j, i): fine enough for thin cortex and fat planes."""
    target = (4.0, 4.0, 6.5)  # mm (i, j, k)
    f = [int(min(3, max(1, math.ceil(s / t - 0.05)))) for s, t in zip(grid.spacing, target)]
    return (f[2], f[1], f[0])


@dataclasses.dataclass
class TissueMap:
    """The anatomy sampled on a grid.

    Args:
        grid: the grid.
        labels: structure labels on the grid (``uint8``, the majority of each voxel's sub-voxels).
        tissue: tissue classes on the grid subdivided ``factor`` times (``uint8``).
        factor: sub-voxels per voxel along ``(k, j, i)``.
    """

    grid: Grid
    labels: np.ndarray
    tissue: np.ndarray
    factor: tuple

    def average(self, table: np.ndarray) -> np.ndarray:
        """Voxel means of a per-tissue value table (partial volume), ``float32`` on the grid."""
        fine = np.asarray(table, dtype=np.float32)[self.tissue]
        return _block_mean(fine, self.factor)

    def fractions(self, tissue: Tissue) -> np.ndarray:
        """The fraction of each voxel made of ``tissue``."""
        table = np.zeros(len(Tissue), dtype=np.float32)
        table[tissue] = 1.0
        return self.average(table)


def _block_mean(fine: np.ndarray, factor: tuple) -> np.ndarray:
    if factor == (1, 1, 1):
        return fine.astype(np.float32, copy=False)
    fk, fj, fi = factor
    k, j, i = fine.shape[0] // fk, fine.shape[1] // fj, fine.shape[2] // fi
    return fine.reshape(k, fk, j, fj, i, fi).mean(axis=(1, 3, 5), dtype=np.float32)


def _block_mode(fine: np.ndarray, factor: tuple, n_values: int) -> np.ndarray:
    if factor == (1, 1, 1):
        return fine
    fk, fj, fi = factor
    k, j, i = fine.shape[0] // fk, fine.shape[1] // fj, fine.shape[2] // fi
    blocks = fine.reshape(k, fk, j, fj, i, fi).transpose(0, 2, 4, 1, 3, 5).reshape(k * j * i, -1)
    offsets = (np.arange(k * j * i, dtype=np.int64) * n_values)[:, None]
    counts = np.bincount((blocks + offsets).ravel(), minlength=k * j * i * n_values)
    return counts.reshape(k * j * i, n_values).argmax(axis=1).astype(fine.dtype).reshape(k, j, i)


def render_tissue(anatomy: Anatomy, grid: Grid, factor: tuple | None = None) -> TissueMap:
    """Sample an anatomy on a grid.

    Args:
        anatomy: from :func:`build_anatomy`.
        grid: the target grid.
        factor: sub-voxels per voxel ``(k, j, i)``. Defaults to `None` (about
            2.6 mm in-plane and 4.5 mm across slices, at most 3).

    Returns:
        A :class:`TissueMap`.
    """
    factor = _supersampling(grid) if factor is None else tuple(factor)
    fine = grid.subdivided(factor)
    tissue = np.empty(fine.shape, dtype=np.uint8)
    labels = np.empty(fine.shape, dtype=np.uint8)
    step = max(1, 2_000_000 // (fine.shape[1] * fine.shape[2]))
    for k0 in range(0, fine.shape[0], step):
        k1 = min(fine.shape[0], k0 + step)
        tissue[k0:k1], labels[k0:k1] = _render_chunk(anatomy, fine, k0, k1)
    return TissueMap(grid, _block_mode(labels, factor, NUM_CLASSES), tissue, factor)
