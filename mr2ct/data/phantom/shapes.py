"""Signed-distance shapes of the phantom: ellipsoid, sphere, tapered tube, cup and trunk, and a smooth union.

Every shape gives an approximate signed distance in mm (negative inside) for
float32 coordinate arrays in the body frame, and an axis-aligned bounding box
so it is evaluated only near itself. Scalars are Python floats: NumPy scalars
would promote the float32 arrays to float64.
"""

from __future__ import annotations

import numpy as np


_FAR = 1.0e6  # "no shape here"


def _sdf_from_ellipsoid(q1, q2, q3, r1, r2, r3):
    """Approximate signed distance (mm) to an axis-aligned ellipsoid at the origin.

    ``(rho - 1) / |grad rho|`` is exact on the surface and close to it, which is
    where it matters (cortex thickness, fat planes, smooth unions).
    """
    u1, u2, u3 = q1 / r1, q2 / r2, q3 / r3
    rho2 = u1 * u1 + u2 * u2 + u3 * u3
    v1, v2, v3 = u1 / r1, u2 / r2, u3 / r3
    g2 = v1 * v1 + v2 * v2 + v3 * v3
    rmin = np.minimum(np.minimum(r1, r2), r3)
    scale = np.sqrt((rho2 + 1e-6) / (g2 + 1e-6 / (rmin * rmin)))
    return (np.sqrt(rho2) - 1.0) * scale


def _smin(a, b, k):
    """Smooth minimum (polynomial) with blending radius ``k`` mm."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.maximum(k - np.abs(a - b), 0.0) * (1.0 / k)
    return np.minimum(a, b) - h * h * (k * 0.25)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _floats(v) -> tuple:
    return tuple(float(x) for x in np.ravel(v))


class _Ellipsoid:
    def __init__(self, centre, radii, axes=None):
        self.centre = _floats(centre)
        self.radii = _floats(radii)
        axes = np.eye(3) if axes is None else np.asarray(axes, dtype=np.float64)  # columns
        self.axes = tuple(_floats(axes[:, m]) for m in range(3))
        extent = np.abs(axes) @ np.asarray(self.radii)
        self._box = (np.asarray(self.centre) - extent, np.asarray(self.centre) + extent)

    def box(self):
        return self._box

    def sdf(self, x, y, z):
        cx, cy, cz = self.centre
        dx, dy, dz = x - cx, y - cy, z - cz
        q = [dx * a0 + dy * a1 + dz * a2 for a0, a1, a2 in self.axes]
        return _sdf_from_ellipsoid(*q, *self.radii)


class _Sphere:
    def __init__(self, centre, radius):
        self.centre = _floats(centre)
        self.radius = float(radius)

    def box(self):
        c = np.asarray(self.centre)
        return c - self.radius, c + self.radius

    def sdf(self, x, y, z):
        cx, cy, cz = self.centre
        return np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) - self.radius


class _Segment:
    """A tapered tube of elliptic cross-section from ``a`` to ``b`` with rounded ends.

    ``ra``/``rb`` are the (wide, thick) semi-axes at each end; the thick axis
    points along ``normal`` made perpendicular to the tube; ``cap`` is how far
    the rounded ends reach beyond ``a`` and ``b``.
    """

    def __init__(self, a, b, ra, rb, normal=(0.0, 1.0, 0.0), cap=None):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        axis = b - a
        self.length = float(np.linalg.norm(axis))
        u = axis / self.length
        n = np.asarray(normal, dtype=np.float64)
        n = n - (n @ u) * u
        if np.linalg.norm(n) < 1e-6:  # normal along the tube: any perpendicular
            n = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
        e2 = _unit(n)
        e1 = np.cross(e2, u)
        self.a, self.b, self.u = _floats(a), _floats(b), _floats(u)
        self.e1, self.e2 = _floats(e1), _floats(e2)
        self.ra, self.rb = _floats(ra), _floats(rb)
        self.cap = (min(self.ra), min(self.rb)) if cap is None else _floats(cap)
        r = max(*self.ra, *self.rb, *self.cap)
        self._box = (np.minimum(a, b) - r, np.maximum(a, b) + r)

    def box(self):
        return self._box

    def sdf(self, x, y, z):
        (ax, ay, az), (u0, u1, u2) = self.a, self.u
        (p0, p1, p2), (n0, n1, n2) = self.e1, self.e2
        dx, dy, dz = x - ax, y - ay, z - az
        along = dx * u0 + dy * u1 + dz * u2
        t = np.clip(along * (1.0 / self.length), 0.0, 1.0)
        q1 = dx * p0 + dy * p1 + dz * p2
        q2 = dx * n0 + dy * n1 + dz * n2
        q3 = along - t * self.length
        (a1, a2), (b1, b2), (c1, c2) = self.ra, self.rb, self.cap
        r1 = a1 + t * (b1 - a1) if a1 != b1 else a1
        r2 = a2 + t * (b2 - a2) if a2 != b2 else a2
        r3 = c1 + t * (c2 - c1) if c1 != c2 else c1
        return _sdf_from_ellipsoid(q1, q2, q3, r1, r2, r3)


class _Cup:
    """A spherical shell between radii ``inner`` and ``outer`` cut by a plane: the acetabulum."""

    def __init__(self, centre, inner, outer, opening, cut):
        self.centre = _floats(centre)
        self.inner, self.outer = float(inner), float(outer)
        self.opening = _floats(_unit(opening))
        self.cut = float(cut)

    def box(self):
        c = np.asarray(self.centre)
        return c - self.outer, c + self.outer

    def sdf(self, x, y, z):
        (cx, cy, cz), (n0, n1, n2) = self.centre, self.opening
        dx, dy, dz = x - cx, y - cy, z - cz
        r = np.sqrt(dx * dx + dy * dy + dz * dz)
        shell = np.maximum(r - self.outer, self.inner - r)
        plane = dx * n0 + dy * n1 + dz * n2 - self.cut
        return np.maximum(shell, plane)


class _Trunk:
    """A vertical column of elliptic cross-section varying with height, cut off below.

    ``nodes`` are rows ``(z, centre_y, radius_x, radius_y)``; between nodes
    everything is interpolated linearly. The bottom at ``z_bottom`` is rounded
    with ``rounding`` mm.
    """

    def __init__(self, nodes, z_bottom, rounding, reach):
        self.nodes = np.asarray(nodes, dtype=np.float64)
        self.z_bottom, self.rounding = float(z_bottom), float(rounding)
        r = float(self.nodes[:, 2:].max())
        self._box = (np.array([-r, float(self.nodes[:, 1].min()) - r, self.z_bottom]),
                     np.array([r, float(self.nodes[:, 1].max()) + r, float(reach)]))

    def box(self):
        return self._box

    def sdf(self, x, y, z):
        n = self.nodes
        z1 = np.asarray(z).ravel()
        # the radii depend on z only: interpolate along z once, broadcast
        cy, rx, ry = (np.interp(z1, n[:, 0], n[:, m]).astype(np.float32).reshape(np.shape(z)) for m in (1, 2, 3))
        side = _sdf_from_ellipsoid(x, y - cy, np.zeros_like(cy), rx, ry, 1e6)
        return -_smin(-side, -(self.z_bottom - z), self.rounding)


def _tube(points, radii, normal=(0.0, 1.0, 0.0), caps=None) -> list:
    """Segments along a polyline; ``radii`` are (wide, thick) per point."""
    segments = []
    for n in range(len(points) - 1):
        cap = None if caps is None else (caps[n], caps[n + 1])
        segments.append(_Segment(points[n], points[n + 1], radii[n], radii[n + 1], normal, cap))
    return segments


def _box_corners(lo, hi) -> np.ndarray:
    return np.array([[(lo, hi)[a][0], (lo, hi)[b][1], (lo, hi)[c][2]]
                     for a in (0, 1) for b in (0, 1) for c in (0, 1)])
