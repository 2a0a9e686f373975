"""The `shapes` puppet: a 3dshapes-like room corner with one object, ray cast in numpy.

The six factors of DeepMind's 3dshapes (floor hue, wall hue, object hue,
scale, shape, orientation) are the controls. A fixed pinhole camera looks
into the corner of two walls; the object stands on the floor in the middle.
Rays are cast analytically (planes, oriented box by slab test, sphere,
capped cylinder, capsule = cylinder + two spheres) and shaded with Lambert
plus ambient, a small highlight on the object and a soft contact shadow under
it. Renders are 2× supersampled and area-averaged to `size`.

Speed comes from caching what does not depend on the object: per size the
camera rays, and per (floor hue, wall hue, size) the shaded background.

Round objects carry two-tone azimuthal segments of their own hue so that
their orientation (rotation about the vertical axis) is visible; 3dshapes'
round objects have none, which makes its orientation factor unreadable for
them.
"""

from __future__ import annotations

import colorsys
import functools
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from engine.puppets.base import Control, Puppet

SUPERSAMPLING = 2

# Surface ids returned by `ShapesPuppet.segment`; MIXED marks pixels that straddle two surfaces.
FLOOR, LEFT_WALL, RIGHT_WALL, OBJECT, MIXED = 0, 1, 2, 3, 255

SHAPES = ("cube", "cylinder", "sphere", "capsule")
HUES = tuple(f"{step / 10:.1f}" for step in range(10))

CAMERA_POSITION = np.array([-4.4, 2.5, -4.4])
CAMERA_TARGET = np.array([0.0, 0.8, 0.0])
FIELD_OF_VIEW_DEG = 34.0
WALL_DISTANCE = 2.6  # the walls are the planes x = WALL_DISTANCE and z = WALL_DISTANCE
LIGHT_DIRECTION = np.array([-0.45, 1.0, -0.25]) / np.linalg.norm([-0.45, 1.0, -0.25])  # towards the light
AMBIENT = 0.38
DIFFUSE = 0.62
SATURATION, VALUE = 0.8, 1.0
OBJECT_HALF_SIZE = 0.62  # at scale 1
CAPSULE_RADIUS = 0.72  # × half size
CAPSULE_STRAIGHT = 0.7  # half-length of the straight part, × half size
SEGMENT_TONE = 0.8  # brightness of every other azimuthal segment on round objects
SHADOW_STRENGTH = 0.5


@dataclass(frozen=True)
class Rays:
    """Camera rays for one square canvas, world coordinates (y up)."""

    origin: np.ndarray  # (3,)
    directions: np.ndarray  # (N, 3) unit vectors, row-major over the canvas


@dataclass(frozen=True)
class Background:
    """Floor and walls shaded for one (floor hue, wall hue, canvas)."""

    colour: np.ndarray  # (N, 3) float32 in [0, 1]
    distance: np.ndarray  # (N,) ray parameter of the hit
    surface: np.ndarray  # (N,) uint8 surface id
    floor_xz: np.ndarray  # (N, 2) floor hit positions (nan elsewhere), for the contact shadow


@dataclass(frozen=True)
class Hit:
    """Nearest intersection per ray in the object's frame: distance (inf = miss), normal, local point."""

    distance: np.ndarray  # (N,)
    normal: np.ndarray  # (N, 3)
    point: np.ndarray  # (N, 3)


def hue_colour(index: int) -> np.ndarray:
    """RGB in [0, 1] of 3dshapes hue value index/10."""
    return np.array(colorsys.hsv_to_rgb(index / 10.0, SATURATION, VALUE), dtype=np.float32)


@functools.lru_cache(maxsize=8)
def camera_rays(canvas: int) -> Rays:
    """One ray through each canvas pixel centre of the fixed camera."""
    forward = CAMERA_TARGET - CAMERA_POSITION
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    half = np.tan(np.radians(FIELD_OF_VIEW_DEG) / 2)
    coords = ((np.arange(canvas) + 0.5) / canvas * 2 - 1) * half
    sx, sy = np.meshgrid(coords, -coords)  # screen y grows upwards
    directions = forward + sx[..., None] * right + sy[..., None] * up
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    directions = directions.reshape(-1, 3)
    directions.setflags(write=False)
    return Rays(origin=CAMERA_POSITION.copy(), directions=directions)


def _plane_distance(rays: Rays, axis: int, level: float) -> np.ndarray:
    """Ray parameter where each ray meets the plane coordinate[axis] = level (inf if behind or parallel)."""
    step = rays.directions[:, axis]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (level - rays.origin[axis]) / step
    return np.where(t > 0, t, np.inf)


def _lambert(normal: np.ndarray) -> float | np.ndarray:
    return AMBIENT + DIFFUSE * np.clip(normal @ LIGHT_DIRECTION, 0.0, None)


@functools.lru_cache(maxsize=64)
def background(floor_hue: int, wall_hue: int, canvas: int) -> Background:
    """The room without the object: the floor and the two walls, shaded."""
    rays = camera_rays(canvas)
    t_floor = _plane_distance(rays, 1, 0.0)
    t_left = _plane_distance(rays, 0, WALL_DISTANCE)  # seen on the left of the corner
    t_right = _plane_distance(rays, 2, WALL_DISTANCE)
    stacked = np.stack([t_floor, t_left, t_right])
    surface = np.argmin(stacked, axis=0).astype(np.uint8)  # FLOOR, LEFT_WALL, RIGHT_WALL in that order
    distance = stacked.min(axis=0)
    normals = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    shade = np.array([_lambert(n) for n in normals], dtype=np.float32)[surface]
    albedo = np.where((surface == FLOOR)[:, None], hue_colour(floor_hue), hue_colour(wall_hue))
    colour = (albedo * shade[:, None]).astype(np.float32)
    points = rays.origin + rays.directions * distance[:, None]
    floor_xz = np.where((surface == FLOOR)[:, None], points[:, [0, 2]], np.nan)
    for array in (colour, distance, surface, floor_xz):
        array.setflags(write=False)
    return Background(colour=colour, distance=distance, surface=surface, floor_xz=floor_xz)


def _box(origin: np.ndarray, directions: np.ndarray, half: float) -> Hit:
    """Axis-aligned cube of half size `half` centred at the origin (slab test)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / directions
        near = (-half - origin) * inverse
        far = (half - origin) * inverse
    entry = np.minimum(near, far)
    leave = np.maximum(near, far)
    t_in = entry.max(axis=1)
    t_out = leave.min(axis=1)
    hit = (t_in <= t_out) & (t_in > 0)
    axis = entry.argmax(axis=1)
    normal = np.zeros_like(directions)
    rows = np.arange(len(directions))
    normal[rows, axis] = -np.sign(directions[rows, axis])
    distance = np.where(hit, t_in, np.inf)
    return Hit(distance, normal, origin + directions * np.where(hit, t_in, 0.0)[:, None])


def _sphere_distance(origin: np.ndarray, directions: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    offset = origin - centre
    b = directions @ offset
    c = float(offset @ offset) - radius * radius
    disc = b * b - c
    with np.errstate(invalid="ignore"):
        t = -b - np.sqrt(disc)
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def _side_distance(origin: np.ndarray, directions: np.ndarray, radius: float, half_height: float) -> np.ndarray:
    """Vertical cylinder side x² + z² = r², |y| ≤ half_height."""
    ox, oz = origin[0], origin[2]
    dx, dz = directions[:, 0], directions[:, 2]
    a = dx * dx + dz * dz
    b = ox * dx + oz * dz
    c = ox * ox + oz * oz - radius * radius
    disc = b * b - a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(disc)) / a
    y = origin[1] + t * directions[:, 1]
    return np.where((disc >= 0) & (t > 0) & (np.abs(y) <= half_height), t, np.inf)


def _cap_distance(origin: np.ndarray, directions: np.ndarray, radius: float, level: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (level - origin[1]) / directions[:, 1]
    x = origin[0] + t * directions[:, 0]
    z = origin[2] + t * directions[:, 2]
    return np.where((t > 0) & (x * x + z * z <= radius * radius), t, np.inf)


def _round_hit(origin: np.ndarray, directions: np.ndarray, candidates: list[np.ndarray], normal_of) -> Hit:
    stacked = np.stack(candidates)
    which = np.argmin(stacked, axis=0)
    distance = stacked.min(axis=0)
    point = origin + directions * np.where(np.isfinite(distance), distance, 0.0)[:, None]
    return Hit(distance, normal_of(point, which), point)


def _cylinder(origin: np.ndarray, directions: np.ndarray, half: float) -> Hit:
    candidates = [
        _side_distance(origin, directions, half, half),
        _cap_distance(origin, directions, half, half),
        _cap_distance(origin, directions, half, -half),
    ]

    def normal_of(point: np.ndarray, which: np.ndarray) -> np.ndarray:
        side = point * np.array([1.0, 0.0, 1.0])
        side /= np.maximum(np.sqrt(np.einsum("ij,ij->i", side, side)), 1e-9)[:, None]
        caps = np.array([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
        return np.where((which == 0)[:, None], side, caps[np.clip(which - 1, 0, 1)])

    return _round_hit(origin, directions, candidates, normal_of)


def _sphere(origin: np.ndarray, directions: np.ndarray, half: float) -> Hit:
    def normal_of(point: np.ndarray, which: np.ndarray) -> np.ndarray:
        return point / half

    return _round_hit(origin, directions, [_sphere_distance(origin, directions, np.zeros(3), half)], normal_of)


def _capsule(origin: np.ndarray, directions: np.ndarray, half: float) -> Hit:
    radius = CAPSULE_RADIUS * half
    straight = CAPSULE_STRAIGHT * half
    candidates = [
        _side_distance(origin, directions, radius, straight),
        _sphere_distance(origin, directions, np.array([0.0, straight, 0.0]), radius),
        _sphere_distance(origin, directions, np.array([0.0, -straight, 0.0]), radius),
    ]

    def normal_of(point: np.ndarray, which: np.ndarray) -> np.ndarray:
        axis_y = np.clip(point[:, 1], -straight, straight)  # nearest point on the capsule's axis
        normal = point - np.stack([np.zeros_like(axis_y), axis_y, np.zeros_like(axis_y)], axis=1)
        return normal / np.maximum(np.sqrt(np.einsum("ij,ij->i", normal, normal)), 1e-9)[:, None]

    return _round_hit(origin, directions, candidates, normal_of)


INTERSECTORS = {"cube": _box, "cylinder": _cylinder, "sphere": _sphere, "capsule": _capsule}


def object_half_height(shape: str, scale: float) -> float:
    """Half the object's height, so that it stands on the floor."""
    half = OBJECT_HALF_SIZE * scale
    return half * (CAPSULE_RADIUS + CAPSULE_STRAIGHT) if shape == "capsule" else half


def _rotation_y(degrees: float) -> np.ndarray:
    """World-from-object rotation about the vertical axis; positive turns the object counter-clockwise seen from above."""
    angle = np.radians(degrees)
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _object_pixels(rays: Rays, shape: str, scale: float, orientation: float) -> tuple[np.ndarray, Hit, np.ndarray]:
    """Rays that may meet the object (screen bound of its bounding sphere), their hit, and the object rotation."""
    half = OBJECT_HALF_SIZE * scale
    centre = np.array([0.0, object_half_height(shape, scale), 0.0])
    bound = np.sqrt(3.0) * max(half, object_half_height(shape, scale)) * 1.05
    offset = centre - rays.origin
    along = rays.directions @ offset
    miss_sq = (offset @ offset) - along * along
    candidates = np.flatnonzero(miss_sq <= bound * bound)
    rotation = _rotation_y(orientation)
    # Into the object frame: row vectors times R equals R^T applied to each vector.
    origin = (rays.origin - centre) @ rotation
    directions = rays.directions[candidates] @ rotation
    return candidates, INTERSECTORS[shape](origin, directions, half), rotation


def _object_colour(hit: Hit, shape: str, hue: int, rotation: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Shaded object colour for the rays that hit it (object frame in, world lighting)."""
    normal = hit.normal @ rotation.T  # back to world
    albedo = np.broadcast_to(hue_colour(hue), normal.shape).copy()
    if shape != "cube":
        segment = np.floor(np.arctan2(hit.point[:, 2], hit.point[:, 0]) / (np.pi / 2)).astype(int) % 2
        albedo *= np.where(segment == 1, SEGMENT_TONE, 1.0)[:, None]
    halfway = LIGHT_DIRECTION - directions
    halfway /= np.sqrt(np.einsum("ij,ij->i", halfway, halfway))[:, None]
    highlight = 0.25 * np.clip(np.einsum("ij,ij->i", normal, halfway), 0.0, 1.0) ** 24
    return albedo * _lambert(normal)[:, None] + highlight[:, None]


def _contact_shadow(floor_xz: np.ndarray, shape: str, scale: float) -> np.ndarray:
    """Darkening factor on the floor: a soft blob under the object, pushed away from the light."""
    half = OBJECT_HALF_SIZE * scale
    radius = half * (CAPSULE_RADIUS if shape == "capsule" else 1.0) * 1.5
    away = -LIGHT_DIRECTION[[0, 2]] * object_half_height(shape, scale) * 0.6
    offset = floor_xz - away
    distance_sq = np.einsum("ij,ij->i", offset, offset) / (radius * radius)
    blob = SHADOW_STRENGTH * np.exp(-distance_sq * 1.6)
    return np.where(np.isnan(distance_sq), 1.0, 1.0 - blob)


def _compose(values: Mapping[str, float], canvas: int) -> tuple[np.ndarray, np.ndarray]:
    """(colour (N,3) float, surface id (N,) uint8) on the supersampled canvas."""
    shape = SHAPES[int(values["shape"])]
    scale = float(values["scale"])
    rays = camera_rays(canvas)
    room = background(int(values["floor_hue"]), int(values["wall_hue"]), canvas)
    colour = room.colour * _contact_shadow(room.floor_xz, shape, scale)[:, None]
    surface = room.surface.copy()
    candidates, hit, rotation = _object_pixels(rays, shape, scale, float(values["orientation"]))
    front = hit.distance < room.distance[candidates]
    pixels = candidates[front]
    visible = Hit(hit.distance[front], hit.normal[front], hit.point[front])
    colour[pixels] = _object_colour(visible, shape, int(values["object_hue"]), rotation, rays.directions[pixels])
    surface[pixels] = OBJECT
    return colour, surface


class ShapesPuppet(Puppet):
    """3dshapes' six factors on a ray-cast room corner: the evaluation scene of RIFT's 3D-Shapes-ABC."""

    name = "shapes"
    label = "3D shapes"
    controls = (
        Control("floor_hue", "Floor hue", 0, 9, 0, "categorical", HUES),
        Control("wall_hue", "Wall hue", 0, 9, 6, "categorical", HUES),
        Control("object_hue", "Object hue", 0, 9, 3, "categorical", HUES),
        Control("scale", "Object scale", 0.75, 1.25, 1.0, "continuous"),
        Control("shape", "Shape", 0, len(SHAPES) - 1, 0, "categorical", SHAPES),
        Control("orientation", "Orientation (degrees about the vertical)", -30.0, 30.0, 0.0, "continuous"),
    )

    def draw(self, values: Mapping[str, float], size: int, seed: int) -> np.ndarray:
        """The scene at `size`; `seed` is unused because the scene has no random detail."""
        canvas = size * SUPERSAMPLING
        colour, _ = _compose(values, canvas)
        image = cv2.resize(colour.reshape(canvas, canvas, 3), (size, size), interpolation=cv2.INTER_AREA)
        return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)

    def segment(self, values: Mapping[str, float], size: int) -> np.ndarray:
        """(size, size) surface id per pixel (FLOOR, LEFT_WALL, RIGHT_WALL, OBJECT; MIXED on edges).

        Lets tests and the trainer know which pixels each factor may touch.
        """
        canvas = size * SUPERSAMPLING
        _, surface = _compose(self.resolve(values), canvas)
        blocks = surface.reshape(size, SUPERSAMPLING, size, SUPERSAMPLING).transpose(0, 2, 1, 3).reshape(size, size, -1)
        pure = (blocks == blocks[:, :, :1]).all(axis=2)
        return np.where(pure, blocks[:, :, 0], MIXED).astype(np.uint8)
