"""The `face` puppet: a stylised, shaded 3D head whose mouth, eyes and pose are controls.

The head is ray cast in numpy: ellipsoids for skull, jaw, ears, nose and
eyeballs, shells for hair, a cylinder for the neck and an ellipsoid for the
shoulders. Eyes, brows and mouth are painted in the head's own frame from the
surface point each ray hits, so they stay on the surface under yaw, pitch and
roll, and anything on the far side is hidden by the ray cast itself. Lambert
shading with ambient light and small highlights gives the 3D look; renders
are 2× supersampled and area-averaged to `size`.

Conventions (as displayed): positive `yaw` turns the face to the viewer's
right, positive `pitch` tilts it up, positive `roll` tilts the head
counter-clockwise. `seed` picks the shirt colour, iris colour and the hair
strand phase: detail that a triplet's "rest" may vary freely.
"""

from __future__ import annotations

import colorsys
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from engine.puppets.base import Control, Puppet

SUPERSAMPLING = 2

# Part ids returned by `FacePuppet.segment`; MIXED marks pixels that straddle two parts.
BACKGROUND, SKIN, HAIR, EYE, BROW, MOUTH, CLOTH, MIXED = 0, 1, 2, 3, 4, 5, 6, 255

HAIR_STYLES = ("short", "long", "bald", "bun", "curly")
HAIR_COLOURS = ("black", "dark brown", "brown", "auburn", "blonde", "grey")
HAIR_RGB = np.array(
    [[0.07, 0.06, 0.06], [0.2, 0.12, 0.07], [0.4, 0.26, 0.14], [0.55, 0.22, 0.1], [0.86, 0.71, 0.43], [0.72, 0.72, 0.72]]
)
BACKGROUNDS = ("grey", "blue", "green", "beige", "dark")
BACKGROUND_RGB = np.array(
    [[0.58, 0.6, 0.63], [0.38, 0.52, 0.74], [0.47, 0.63, 0.47], [0.86, 0.79, 0.66], [0.16, 0.17, 0.21]]
)
SKIN_PALETTE = np.array(  # light to dark, interpolated by skin_tone in [0, 1]
    [[0.98, 0.86, 0.76], [0.93, 0.74, 0.6], [0.8, 0.57, 0.42], [0.6, 0.4, 0.27], [0.36, 0.23, 0.15]]
)
IRIS_RGB = np.array([[0.32, 0.2, 0.1], [0.25, 0.45, 0.65], [0.3, 0.45, 0.25]])
LIP_TINT = np.array([0.92, 0.55, 0.55])
MOUTH_INSIDE_RGB = np.array([0.22, 0.05, 0.06])
TEETH_RGB = np.array([0.95, 0.93, 0.87])
SCLERA_RGB = np.array([0.96, 0.95, 0.93])

CAMERA_POSITION = np.array([0.0, -0.05, 9.0])
FIELD_HALF_HEIGHT = 1.5  # world units visible above and below the image centre at the head's depth
HEAD_PIVOT = np.array([0.0, -0.75, -0.05])  # where the neck meets the head; rotations turn about it
HEAD_CENTRE = np.array([0.0, 0.15, 0.0])  # world position of the head frame's origin at rest
LIGHT = np.array([-0.45, 0.55, 0.7]) / np.linalg.norm([-0.45, 0.55, 0.7])  # towards the key light
AMBIENT, DIFFUSE = 0.42, 0.62

SKULL = (np.array([0.0, 0.0, 0.0]), np.array([0.76, 0.98, 0.86]))
JAW = (np.array([0.0, -0.42, 0.05]), np.array([0.58, 0.55, 0.72]))
JAW_DROP = 0.12  # how far the jaw moves down at mouth_open = 1
SEAM_SOFTNESS = 0.12  # implicit-function width over which skull and jaw normals blend
EARS = [(np.array([side * 0.75, 0.0, -0.02]), np.array([0.1, 0.22, 0.14])) for side in (-1, 1)]
NOSE = (np.array([0.0, -0.06, 0.8]), np.array([0.1, 0.23, 0.13]))
NOSE_TIP = (np.array([0.0, -0.2, 0.88]), np.array([0.095, 0.085, 0.09]))
EYE_CENTRES = [np.array([side * 0.29, 0.16, 0.62]) for side in (-1, 1)]
EYE_RADIUS = 0.17  # eyeball
EYE_HALF_WIDTH = 0.15  # painted opening
BROW_Y, BROW_HALF_WIDTH, BROW_THICKNESS = 0.4, 0.17, 0.035
MOUTH_Y, MOUTH_HALF_WIDTH = -0.47, 0.25
HAIR_SHELL = (np.array([0.0, 0.05, -0.03]), SKULL[1] * 1.07)
CURLY_SHELL = (np.array([0.0, 0.12, -0.06]), SKULL[1] * np.array([1.32, 1.18, 1.28]))
LONG_HAIR = (np.array([0.0, -0.4, -0.42]), np.array([0.9, 1.2, 0.45]))
BUN = (np.array([0.0, 0.98, -0.42]), np.array([0.33, 0.3, 0.33]))
NECK_RADIUS, NECK_Z, NECK_BOTTOM, NECK_TOP = 0.33, -0.08, -2.2, -0.4
SHOULDERS = (np.array([0.0, -2.05, -0.15]), np.array([1.75, 0.78, 0.75]))


Ellipsoid = tuple[np.ndarray, np.ndarray]
Window = tuple[int, int, int, int]  # canvas rows [top, bottom) and columns [left, right)
BOX_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)


@dataclass(frozen=True)
class Pose:
    """Everything a render needs, decoded from control values and seed."""

    rotation: np.ndarray  # (3, 3) world from head
    mouth_open: float
    smile: float
    eye_open: float
    skin: np.ndarray  # (3,)
    hair: np.ndarray  # (3,)
    hair_style: str
    background: np.ndarray  # (3,)
    shirt: np.ndarray  # (3,)
    iris: np.ndarray  # (3,)
    strand_phase: float

    @property
    def jaw(self) -> Ellipsoid:
        """The jaw drops as the mouth opens."""
        return (JAW[0] - np.array([0.0, JAW_DROP * self.mouth_open, 0.0]), JAW[1])


@dataclass(frozen=True)
class Grid:
    """What one canvas size fixes about its camera rays, built once per size (a slider session reuses it)."""

    canvas: int
    x: np.ndarray  # (C,) image-plane x of each column's pixel centre at unit depth
    y: np.ndarray  # (C,) image-plane y of each row's pixel centre at unit depth
    directions: np.ndarray  # (3, C*C) rays (x, y, -1), unnormalised: a hit's ray parameter compares only per pixel
    halfway: np.ndarray  # (3, C*C) unit vectors halfway between the light and the viewer, for highlights


@functools.lru_cache(maxsize=8)
def _grid(canvas: int) -> Grid:
    half = FIELD_HALF_HEIGHT / CAMERA_POSITION[2]
    x = ((np.arange(canvas) + 0.5) / canvas * 2 - 1) * half
    y = -x
    sx, sy = np.meshgrid(x, y)
    directions = np.stack([sx.ravel(), sy.ravel(), -np.ones(canvas * canvas)])
    halfway = LIGHT[:, None] - directions / np.linalg.norm(directions, axis=0)
    halfway /= np.linalg.norm(halfway, axis=0)
    directions, halfway = directions.astype(np.float32), halfway.astype(np.float32)
    for array in (x, y, directions, halfway):
        array.setflags(write=False)
    return Grid(canvas, x, y, directions, halfway)


@dataclass(frozen=True)
class Surface:
    """One primitive's first hits inside its screen window, and the quadric its normals come from."""

    part: int
    in_head_frame: bool
    window: Window
    distance: np.ndarray  # (rows, columns) of the window: ray parameter of the hit, inf where missed
    centre: np.ndarray  # (3,) in its frame; the normal is (point - centre) * gradient_scale, normalised
    gradient_scale: np.ndarray  # (3,) 1 / radii² for an ellipsoid, (1, 0, 1) for the neck's cylinder
    albedo_scale: float = 1.0


@dataclass(frozen=True)
class Rays:
    """The camera rays of one canvas, seen from the posed head's frame."""

    grid: Grid
    head_origin: np.ndarray  # (3,) the camera in the head frame
    rotation: np.ndarray  # (3, 3) world from head

    def window(self, centre: np.ndarray, radii: np.ndarray, in_head_frame: bool) -> Window:
        """The canvas rectangle that holds the projection of the box (centre, half-extents `radii`).

        Testing each primitive only inside the projected corners of its
        bounding box (a margin of a pixel added) is what keeps the face cheap:
        most primitives cover a few percent of the image.
        """
        canvas = self.grid.canvas
        if in_head_frame:
            centre = HEAD_PIVOT + self.rotation @ (centre + HEAD_CENTRE - HEAD_PIVOT)
            radii = np.sqrt(((self.rotation * radii) ** 2).sum(axis=1))  # the world box around the turned one
        offset = centre + BOX_CORNERS * radii - CAMERA_POSITION  # (8, 3)
        depth = -offset[:, 2]
        if depth.min() <= 0:
            return 0, canvas, 0, canvas
        projected = offset[:, :2] / depth[:, None]  # (8, 2) image-plane x, y at unit depth
        (low_x, low_y), (high_x, high_y) = projected.min(axis=0).tolist(), projected.max(axis=0).tolist()
        half = FIELD_HALF_HEIGHT / CAMERA_POSITION[2]
        scale = canvas / (2 * half)
        top = max(math.floor((half - high_y) * scale - 0.5) - 1, 0)  # pixel-centre coordinates, a pixel's margin
        bottom = min(math.ceil((half - low_y) * scale - 0.5) + 2, canvas)
        left = max(math.floor((low_x + half) * scale - 0.5) - 1, 0)
        right = min(math.ceil((high_x + half) * scale - 0.5) + 2, canvas)
        return top, max(bottom, top), left, max(right, left)


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-from-head rotation: pitch (face up), then yaw (face to screen right), then roll (counter-clockwise)."""
    y, p, r = np.radians([yaw, pitch, roll])
    pitch_m = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    yaw_m = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    roll_m = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return roll_m @ yaw_m @ pitch_m


def _unit_frame(rays: Rays, shape: Ellipsoid, in_head_frame: bool) -> tuple[np.ndarray, np.ndarray]:
    """(K, o): in the ellipsoid's unit-sphere frame a ray (x, y, -1) runs from o along K @ (x, y, -1)."""
    centre, radii = shape
    if in_head_frame:
        return rays.rotation.T / radii[:, None], (rays.head_origin - centre) / radii
    return np.diag(1.0 / radii), (CAMERA_POSITION - centre) / radii


def _along(rows: np.ndarray, columns: np.ndarray, row_vector: np.ndarray) -> np.ndarray:
    """(rows, columns) of row_vector · (x, y, -1) over a window: separable, so two 1-D terms and one outer sum."""
    return np.add.outer(row_vector[1] * rows - row_vector[2], row_vector[0] * columns)


def _ellipsoid(rays: Rays, window: Window, shape: Ellipsoid, in_head_frame: bool) -> tuple[np.ndarray, ...]:
    """(a, b, root, hit) over a window: rays meet the ellipsoid at t = (-b ∓ root) / a where hit.

    The rays sit on a pixel grid, so every coefficient is a sum of per-row and
    per-column terms (plus one xy product): no (N, 3) ray array is gathered or
    rotated per primitive. The camera is outside every primitive and all lie in
    front of it, so a ray hits wherever the discriminant is not negative.
    """
    top, bottom, left, right = window
    x, y = rays.grid.x[left:right], rays.grid.y[top:bottom]
    scaled, origin = _unit_frame(rays, shape, in_head_frame)
    q = scaled.T @ scaled
    m = scaled.T @ origin
    a = np.add.outer(q[1, 1] * y * y - 2 * q[1, 2] * y + q[2, 2], q[0, 0] * x * x - 2 * q[0, 2] * x)
    a += np.multiply.outer(2 * q[0, 1] * y, x)
    b = _along(y, x, m)
    disc = b * b
    disc -= (float(origin @ origin) - 1.0) * a
    hit = disc >= 0
    root = np.sqrt(np.maximum(disc, 0.0, out=disc), out=disc)
    return a, b, root, hit


def _ellipsoid_surface(part: int, rays: Rays, shape: Ellipsoid, in_head_frame: bool = True) -> Surface:
    window = rays.window(shape[0], shape[1], in_head_frame)
    a, b, root, hit = _ellipsoid(rays, window, shape, in_head_frame)
    near = b + root
    np.negative(near, out=near)
    near /= a
    distance = np.where(hit, near, np.inf)
    return Surface(part, in_head_frame, window, distance, shape[0], 1.0 / (shape[1] * shape[1]))


def _hair_region(unit_y: np.ndarray, unit_z: np.ndarray) -> np.ndarray:
    """Which shell points (in its unit-sphere frame) are hair: above a hairline high at the forehead, low at the nape."""
    hairline = np.where(unit_z > 0, -0.12 + 0.55 * unit_z, -0.12 + 0.4 * unit_z)
    return unit_y > hairline


def _hair_surface(rays: Rays, shell: Ellipsoid) -> Surface:
    """Distance to the first hair point on a shell: its near side if that is hair, else its far (inner) side."""
    window = rays.window(shell[0], shell[1], True)
    a, b, root, hit = _ellipsoid(rays, window, shell, True)
    scaled, origin = _unit_frame(rays, shell, True)
    top, bottom, left, right = window
    x, y = rays.grid.x[left:right], rays.grid.y[top:bottom]
    step_y, step_z = _along(y, x, scaled[1]), _along(y, x, scaled[2])
    near, far = -(b + root) / a, (root - b) / a
    near_hair = hit & _hair_region(origin[1] + step_y * near, origin[2] + step_z * near)
    far_hair = hit & _hair_region(origin[1] + step_y * far, origin[2] + step_z * far)
    distance = np.where(near_hair, near, np.where(far_hair, far, np.inf))
    return Surface(HAIR, True, window, distance, shell[0], 1.0 / (shell[1] * shell[1]))


def _head_surfaces(rays: Rays, pose: Pose) -> list[Surface]:
    """Every primitive that turns with the head, intersected in the head frame; skull and jaw come first."""
    surfaces = [
        _ellipsoid_surface(SKIN, rays, SKULL),
        _ellipsoid_surface(SKIN, rays, pose.jaw),
        _ellipsoid_surface(SKIN, rays, NOSE),
        _ellipsoid_surface(SKIN, rays, NOSE_TIP),
    ]
    surfaces += [_ellipsoid_surface(SKIN, rays, ear) for ear in EARS]
    surfaces += [_ellipsoid_surface(EYE, rays, (centre, np.full(3, EYE_RADIUS))) for centre in EYE_CENTRES]
    style = pose.hair_style
    shells = {"short": HAIR_SHELL, "long": HAIR_SHELL, "bun": HAIR_SHELL, "curly": CURLY_SHELL}
    if style in shells:
        surfaces.append(_hair_surface(rays, shells[style]))
    extra = {"long": LONG_HAIR, "bun": BUN}
    if style in extra:
        surfaces.append(_ellipsoid_surface(HAIR, rays, extra[style]))
    return surfaces


def _smooth_union_normal(points: np.ndarray, normal: np.ndarray, centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Blend (3, M) normals towards another ellipsoid's (centre, radii: (3, 1) or (3, M)) near where the two meet.

    This hides the crease between skull and jaw so the seam shades smoothly.
    """
    unit = (points - centre) / radii
    outside = (unit * unit).sum(axis=0) - 1.0  # 0 on the other surface, > 0 beyond it
    weight = 0.5 * np.exp(-np.clip(outside, 0.0, None) / SEAM_SOFTNESS)
    other = unit / radii
    other /= np.sqrt((other * other).sum(axis=0))
    blended = (1.0 - weight) * normal + weight * other
    return blended / np.sqrt((blended * blended).sum(axis=0))


def _neck(rays: Rays) -> Surface:
    """The neck: an open vertical cylinder in the world frame; a ray's hit depends on its column alone."""
    lowest = max(NECK_BOTTOM, CAMERA_POSITION[1] - FIELD_HALF_HEIGHT - 0.2)  # any lower is out of the picture
    middle, reach = (lowest + NECK_TOP) / 2, (NECK_TOP - lowest) / 2
    axis = np.array([0.0, 0.0, NECK_Z])
    window = rays.window(np.array([0.0, middle, NECK_Z]), np.array([NECK_RADIUS, reach, NECK_RADIUS]), False)
    top, bottom, left, right = window
    x, y = rays.grid.x[left:right], rays.grid.y[top:bottom]
    o = CAMERA_POSITION - axis
    a = x * x + 1.0
    b = o[0] * x - o[2]
    c = o[0] ** 2 + o[2] ** 2 - NECK_RADIUS**2
    disc = b * b - a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    height = o[1] + np.multiply.outer(y, t)
    valid = (height > NECK_BOTTOM) & (height < NECK_TOP) & ((disc >= 0) & (t > 0))
    distance = np.where(valid, t, np.inf)
    return Surface(SKIN, False, window, distance, axis, np.array([1.0, 0.0, 1.0]), albedo_scale=0.82)  # jaw's shadow


def _eyes(points: np.ndarray, pose: Pose) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inside opening, albedo (3, M) inside, lash line) for (3, M) points in the head frame.

    Each eye is worked out only for the points in its box (|u| < 1.05 and
    |v| < 0.85 can show it), a few percent of the face.
    """
    inside = np.zeros(points.shape[1], dtype=bool)
    lash = np.zeros(points.shape[1], dtype=bool)
    albedo = np.empty_like(points)
    albedo[:] = SCLERA_RGB[:, None]
    for centre in EYE_CENTRES:
        box = np.flatnonzero(
            (np.abs(points[0] - centre[0]) < 1.1 * EYE_HALF_WIDTH) & (np.abs(points[1] - centre[1]) < EYE_HALF_WIDTH)
        )
        u = (points[0, box] - centre[0]) / EYE_HALF_WIDTH
        v = (points[1, box] - centre[1]) / EYE_HALF_WIDTH
        width = np.clip(1.0 - u * u, 0.0, None) ** 0.8
        top = (-0.32 + 0.95 * pose.eye_open) * width
        bottom = -0.32 * width
        opening = (np.abs(u) < 1.0) & (v > bottom) & (v < top)
        lash[box[(np.abs(u) < 1.05) & (v >= top) & (v < top + 0.1 + 0.12 * width) & ~opening]] = True
        radius = np.hypot(u, v - 0.02)
        albedo[:, box[opening & (radius < 0.5)]] = pose.iris[:, None]
        albedo[:, box[opening & (radius < 0.2)]] = 0.03
        inside[box[opening]] = True
    return inside, albedo, lash


def _brows(points: np.ndarray) -> np.ndarray:
    """Brow mask for (3, M) head-frame points, worked out only in the band of heights a brow can reach."""
    brow = np.zeros(points.shape[1], dtype=bool)
    band = np.flatnonzero(np.abs(points[1] - BROW_Y) < 0.1 + BROW_THICKNESS)
    x, y = points[0, band], points[1, band]
    for side in (-1, 1):
        u = (x - side * EYE_CENTRES[1][0]) / BROW_HALF_WIDTH
        arch = BROW_Y + 0.045 * (1.0 - u * u) - 0.02 * u * side
        brow[band[(np.abs(u) < 1.0) & (np.abs(y - arch) < BROW_THICKNESS * (1.0 - 0.4 * u * u))]] = True
    return brow


def _mouth(points: np.ndarray, pose: Pose) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lips, inside, teeth) masks for (3, M) head-frame points; smile lifts the corners, mouth_open parts the lips."""
    half_width = MOUTH_HALF_WIDTH * (1.0 + 0.15 * max(pose.smile, 0.0))
    s = points[0] / half_width
    across = np.sqrt(np.clip(1.0 - s * s, 0.0, None))
    centre = MOUTH_Y + pose.smile * (0.12 * s * s - 0.03)
    gap = pose.mouth_open * 0.2 * across
    upper = centre + 0.3 * gap + 0.006
    lower = centre - 0.7 * gap - 0.006
    within = np.abs(s) < 1.0
    inside = within & (points[1] < upper) & (points[1] > lower)
    lips = within & ~inside & (points[1] < upper + 0.05 * across) & (points[1] > lower - 0.065 * across)
    teeth = inside & (points[1] > upper - 0.045 * across) & (np.abs(s) < 0.8)
    return lips, inside, teeth


def _put_columns(target: np.ndarray, columns: np.ndarray, values: np.ndarray) -> None:
    """target[:, columns] = values for (3, N) arrays, a row at a time: numpy scatters 1-D rows far faster."""
    for row, value in zip(target, values, strict=True):
        row[columns] = value


def _paint_face(points: np.ndarray, albedo: np.ndarray, part: np.ndarray, candidates: np.ndarray, pose: Pose) -> None:
    """Paint eyes, brows and mouth onto the front-facing ones of `candidates` (skull, jaw and eyeball hits), in place.

    `points` and `albedo` are (3, N) over every hit; `part` is (N,).
    """
    front = candidates[points[2, candidates] > 0.3]
    if front.size == 0:
        return
    points = np.take(points, front, axis=1)
    paint = np.take(albedo, front, axis=1)
    labels = part[front]
    eyes, eye_albedo, lash = _eyes(points, pose)
    np.copyto(paint, eye_albedo, where=eyes)
    lid = (labels == EYE) & ~eyes  # eyeball outside the opening is covered by skin
    np.copyto(paint, (pose.skin * 0.95)[:, None], where=lid)
    labels[lid] = SKIN
    labels[eyes] = EYE
    np.copyto(paint, (pose.hair * 0.4 + 0.02)[:, None], where=lash)
    labels[lash] = EYE
    brow = _brows(points)
    np.copyto(paint, (pose.hair * 0.75 + 0.03)[:, None], where=brow)
    labels[brow] = BROW
    lips, inside, teeth = _mouth(points, pose)
    np.copyto(paint, (pose.skin * LIP_TINT)[:, None], where=lips)
    np.copyto(paint, MOUTH_INSIDE_RGB[:, None], where=inside)
    np.copyto(paint, TEETH_RGB[:, None], where=teeth)
    labels[lips | inside] = MOUTH
    _put_columns(albedo, front, paint)
    part[front] = labels


def _hair_texture(points: np.ndarray, pose: Pose) -> np.ndarray:
    """Brightness modulation that reads as strands (or curls), for (3, M) head-frame points."""
    if pose.hair_style == "curly":
        curls = np.sin(23 * points[0] + pose.strand_phase) * np.sin(23 * points[1]) * np.sin(23 * points[2])
        return 0.85 + 0.15 * curls
    angle = np.arctan2(points[0], points[1] + 0.6)
    return 0.88 + 0.12 * np.sin(60 * angle + pose.strand_phase)


def _nearest(surfaces: list[Surface], canvas: int) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest surface or -1, its ray parameter) per canvas pixel, flat; a running minimum by window."""
    nearest = np.full((canvas, canvas), -1, dtype=np.intp)
    closest = np.full((canvas, canvas), np.inf)
    for index, surface in enumerate(surfaces):
        top, bottom, left, right = surface.window
        window = closest[top:bottom, left:right]
        closer = surface.distance < window
        np.copyto(window, surface.distance, where=closer)
        np.copyto(nearest[top:bottom, left:right], index, where=closer)
    return nearest.ravel(), closest.ravel()


@functools.lru_cache(maxsize=8)
def _shadow_gradient(canvas: int) -> np.ndarray:
    """(C,) per-row brightness of the backdrop: a little darker towards the top."""
    gradient = 1.08 - 0.22 * np.linspace(1.0, 0.0, canvas)
    gradient.setflags(write=False)
    return gradient


def _background(pose: Pose, canvas: int) -> np.ndarray:
    """(3, N) backdrop in the background colour."""
    colour = np.empty((3, canvas, canvas), dtype=np.float32)
    colour[:] = np.multiply.outer(pose.background, _shadow_gradient(canvas))[:, :, None]
    return colour.reshape(3, -1)


GLOSS = np.array([0.05] * (max(SKIN, HAIR, EYE, BROW, MOUTH, CLOTH) + 1), dtype=np.float32)  # highlight by part
GLOSS[EYE], GLOSS[MOUTH] = 0.35, 0.12


def _shade(rays: Rays, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """(colour (3, N) float, part (N,) uint8) for every ray.

    Every hit is shaded in one pass, whatever its surface: per-surface
    constants (frame, quadric, albedo) are looked up by the winning surface's
    index, so the cost is a fixed number of array operations per render.
    Vectors are (3, M) rows, which numpy gathers, scatters and sums far
    faster than (M, 3). Shading runs in float32 (a colour needs no more);
    the intersections stay float64, where the discriminant cancels.
    """
    surfaces = _head_surfaces(rays, pose)
    surfaces += [_neck(rays), _ellipsoid_surface(CLOTH, rays, SHOULDERS, in_head_frame=False)]
    canvas = rays.grid.canvas
    nearest, closest = _nearest(surfaces, canvas)
    colour = _background(pose, canvas)
    part = np.full(canvas * canvas, BACKGROUND, dtype=np.uint8)
    hits = np.flatnonzero(nearest >= 0)
    if hits.size == 0:
        return colour, part
    index = np.take(nearest, hits)
    distance = np.take(closest, hits).astype(np.float32)
    directions = np.take(rays.grid.directions, hits, axis=1)
    rotation = rays.rotation.astype(np.float32)
    head_points = (rotation.T @ directions) * distance + rays.head_origin[:, None].astype(np.float32)
    in_head = np.array([surface.in_head_frame for surface in surfaces])[index]
    points = np.where(in_head, head_points, directions * distance + CAMERA_POSITION[:, None].astype(np.float32))
    centres = np.array([surface.centre for surface in surfaces], dtype=np.float32).T
    scales = np.array([surface.gradient_scale for surface in surfaces], dtype=np.float32).T
    normal = (points - np.take(centres, index, axis=1)) * np.take(scales, index, axis=1)
    normal /= np.sqrt((normal * normal).sum(axis=0))
    seam = np.flatnonzero(index < 2)  # skull and jaw: each blends towards the other
    is_skull = index[seam] == 0
    jaw = pose.jaw
    other_centre = np.where(is_skull, jaw[0][:, None], SKULL[0][:, None]).astype(np.float32)
    other_radii = np.where(is_skull, jaw[1][:, None], SKULL[1][:, None]).astype(np.float32)
    seam_normal = np.take(normal, seam, axis=1)
    _put_columns(normal, seam, _smooth_union_normal(head_points[:, seam], seam_normal, other_centre, other_radii))
    normal = np.where(in_head, rotation @ normal, normal)
    normal *= np.where((normal * directions).sum(axis=0) > 0, -1.0, 1.0)  # inner side of a hair shell: light as seen
    ray_part = np.array([surface.part for surface in surfaces], dtype=np.uint8)[index]
    base = {SKIN: pose.skin, HAIR: pose.hair, CLOTH: pose.shirt, EYE: pose.skin}
    albedo_table = np.array([base[surface.part] * surface.albedo_scale for surface in surfaces], dtype=np.float32)
    albedo = np.take(albedo_table.T, index, axis=1)
    hair = np.flatnonzero(ray_part == HAIR)
    albedo[:, hair] *= _hair_texture(head_points[:, hair], pose)
    _paint_face(head_points, albedo, ray_part, np.flatnonzero((index < 2) | (ray_part == EYE)), pose)
    lambert = np.clip(LIGHT.astype(np.float32) @ normal, 0.0, None)
    specular = np.clip((normal * np.take(rays.grid.halfway, hits, axis=1)).sum(axis=0), 0.0, 1.0)
    highlight = GLOSS[ray_part] * specular**30
    _put_columns(colour, hits, albedo * (AMBIENT + DIFFUSE * lambert) + highlight)
    part[hits] = ray_part
    return colour, part


def _rays(canvas: int, pose: Pose) -> Rays:
    rotation = pose.rotation
    return Rays(
        grid=_grid(canvas),
        head_origin=rotation.T @ (CAMERA_POSITION - HEAD_PIVOT) - (HEAD_CENTRE - HEAD_PIVOT),
        rotation=rotation,
    )


def _skin_colour(tone: float) -> np.ndarray:
    stops = np.linspace(0.0, 1.0, len(SKIN_PALETTE))
    return np.array([np.interp(tone, stops, SKIN_PALETTE[:, channel]) for channel in range(3)])


def _pose(values: Mapping[str, float], seed: int) -> Pose:
    rng = np.random.default_rng(seed)
    shirt = np.array(colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), 0.45, 0.55))
    return Pose(
        rotation=head_rotation(values["yaw"], values["pitch"], values["roll"]),
        mouth_open=float(values["mouth_open"]),
        smile=float(values["smile"]),
        eye_open=float(values["eye_open"]),
        skin=_skin_colour(float(values["skin_tone"])),
        hair=HAIR_RGB[int(values["hair_color"])],
        hair_style=HAIR_STYLES[int(values["hair_style"])],
        background=BACKGROUND_RGB[int(values["background"])],
        shirt=shirt,
        iris=IRIS_RGB[rng.integers(len(IRIS_RGB))],
        strand_phase=float(rng.uniform(0.0, 2 * np.pi)),
    )


class FacePuppet(Puppet):
    """A stylised 3D head: the synthetic side of PuppetGAN's mouth-openness experiment."""

    name = "face"
    label = "3D face"
    controls = (
        Control("mouth_open", "Mouth open", 0.0, 1.0, 0.0, "continuous"),
        Control("smile", "Smile (−1 frown … 1 smile)", -1.0, 1.0, 0.0, "continuous"),
        Control("eye_open", "Eyes open", 0.0, 1.0, 0.75, "continuous"),
        Control("yaw", "Yaw (degrees, face to the right)", -45.0, 45.0, 0.0, "continuous"),
        Control("pitch", "Pitch (degrees, face up)", -30.0, 30.0, 0.0, "continuous"),
        Control("roll", "Roll (degrees, counter-clockwise)", -30.0, 30.0, 0.0, "continuous"),
        Control("skin_tone", "Skin tone (light … dark)", 0.0, 1.0, 0.3, "continuous"),
        Control("hair_color", "Hair colour", 0, len(HAIR_COLOURS) - 1, 1, "categorical", HAIR_COLOURS),
        Control("hair_style", "Hair style", 0, len(HAIR_STYLES) - 1, 0, "categorical", HAIR_STYLES),
        Control("background", "Background", 0, len(BACKGROUNDS) - 1, 0, "categorical", BACKGROUNDS),
    )

    def draw(self, values: Mapping[str, float], size: int, seed: int) -> np.ndarray:
        canvas = size * SUPERSAMPLING
        pose = _pose(values, seed)
        colour, _ = _shade(_rays(canvas, pose), pose)
        planes = colour.reshape(3, canvas, canvas)  # area-averaged a plane at a time: no interleaving copy
        image = np.stack([cv2.resize(plane, (size, size), interpolation=cv2.INTER_AREA) for plane in planes], axis=-1)
        return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)

    def segment(self, values: Mapping[str, float], size: int, seed: int = 0) -> np.ndarray:
        """(size, size) part id per pixel (BACKGROUND, SKIN, HAIR, EYE, BROW, MOUTH, CLOTH; MIXED on edges)."""
        canvas = size * SUPERSAMPLING
        pose = _pose(self.resolve(values), seed)
        _, part = _shade(_rays(canvas, pose), pose)
        blocks = part.reshape(size, SUPERSAMPLING, size, SUPERSAMPLING).transpose(0, 2, 1, 3).reshape(size, size, -1)
        pure = (blocks == blocks[:, :, :1]).all(axis=2)
        return np.where(pure, blocks[:, :, 0], MIXED).astype(np.uint8)
