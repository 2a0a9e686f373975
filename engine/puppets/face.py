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
from collections.abc import Callable, Mapping
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
class Surface:
    """One primitive's hits on the rays it may meet: its part, frame, ray indices, distances, normals."""

    part: int
    in_head_frame: bool
    rays: np.ndarray  # (M,) flat indices of the canvas rays tested (its screen window)
    distance: np.ndarray  # (M,) inf where missed
    normal: Callable[[np.ndarray], np.ndarray]  # points (M', 3) in its frame -> unit normals in its frame


@dataclass(frozen=True)
class Rays:
    """The camera rays of one canvas, in the world and in the posed head's frame."""

    canvas: int
    world: np.ndarray  # (N, 3) unit directions
    head: np.ndarray  # (N, 3) the same directions in the head frame
    head_origin: np.ndarray  # (3,) the camera in the head frame
    rotation: np.ndarray  # (3, 3) world from head

    def window(self, centre: np.ndarray, radius: float, in_head_frame: bool) -> np.ndarray:
        """Flat indices of the canvas pixels whose rays may pass within `radius` of `centre`.

        Testing each primitive only inside its projected bounding square is
        what keeps the face cheap: most primitives cover a few percent of the image.
        """
        if in_head_frame:
            centre = HEAD_PIVOT + self.rotation @ (centre + HEAD_CENTRE - HEAD_PIVOT)
        depth = CAMERA_POSITION[2] - centre[2] - radius
        if depth <= 0:
            return np.arange(self.canvas * self.canvas)
        half = FIELD_HALF_HEIGHT / CAMERA_POSITION[2]
        scale = self.canvas / (2 * half)
        spread = radius / depth * 1.1 * scale + 1.0
        column = ((centre[0] - CAMERA_POSITION[0]) / (depth + radius) + half) * scale - 0.5
        row = (half - (centre[1] - CAMERA_POSITION[1]) / (depth + radius)) * scale - 0.5
        columns = np.arange(max(int(column - spread), 0), min(int(column + spread) + 2, self.canvas))
        rows = np.arange(max(int(row - spread), 0), min(int(row + spread) + 2, self.canvas))
        return np.add.outer(rows * self.canvas, columns).ravel()


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-from-head rotation: pitch (face up), then yaw (face to screen right), then roll (counter-clockwise)."""
    y, p, r = np.radians([yaw, pitch, roll])
    pitch_m = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    yaw_m = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    roll_m = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return roll_m @ yaw_m @ pitch_m


@functools.lru_cache(maxsize=8)
def camera_rays(canvas: int) -> np.ndarray:
    """(N, 3) unit ray directions through each canvas pixel centre, from CAMERA_POSITION towards -z."""
    half = FIELD_HALF_HEIGHT / CAMERA_POSITION[2]
    coords = ((np.arange(canvas) + 0.5) / canvas * 2 - 1) * half
    sx, sy = np.meshgrid(coords, -coords)
    directions = np.stack([sx, sy, -np.ones_like(sx)], axis=-1).reshape(-1, 3)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    directions.setflags(write=False)
    return directions


def _ellipsoid(origin: np.ndarray, directions: np.ndarray, shape: Ellipsoid) -> tuple[np.ndarray, np.ndarray]:
    """(near, far) ray parameters where rays from one `origin` (3,) meet the ellipsoid (centre, radii); inf = miss.

    Written as matrix-vector products over (N, 3) directions: numpy's small-axis reductions would dominate.
    """
    centre, radii = shape
    inverse = 1.0 / (radii * radii)
    offset = origin - centre
    a = (directions * directions) @ inverse
    b = directions @ (offset * inverse)
    c = float((offset * offset) @ inverse) - 1.0
    disc = b * b - a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    near = (-b - root) / a
    far = (-b + root) / a
    miss = (disc < 0) | (far <= 0)
    return np.where(miss | (near <= 0), np.inf, near), np.where(miss, np.inf, far)


def _normal_of(shape: Ellipsoid) -> Callable[[np.ndarray], np.ndarray]:
    centre, radii = shape

    def normal(points: np.ndarray) -> np.ndarray:
        gradient = (points - centre) / (radii * radii)
        return gradient / np.sqrt(np.einsum("ij,ij->i", gradient, gradient))[:, None]

    return normal


def _hair_region(points: np.ndarray, shape: Ellipsoid) -> np.ndarray:
    """Which shell points are hair: above a hairline that is high at the forehead and low at the nape."""
    unit = (points - shape[0]) / shape[1]
    front = unit[:, 2]
    hairline = np.where(front > 0, -0.12 + 0.55 * front, -0.12 + 0.4 * front)
    return unit[:, 1] > hairline


def _hair_shell(origin: np.ndarray, directions: np.ndarray, shape: Ellipsoid) -> np.ndarray:
    """Distance to the first hair point on a shell: its near side if that is hair, else its far (inner) side."""
    near, far = _ellipsoid(origin, directions, shape)
    near_point = origin + directions * np.where(np.isfinite(near), near, 0.0)[:, None]
    far_point = origin + directions * np.where(np.isfinite(far), far, 0.0)[:, None]
    return np.where(_hair_region(near_point, shape), near, np.where(_hair_region(far_point, shape), far, np.inf))


def _ellipsoid_surface(part: int, rays: Rays, shape: Ellipsoid, in_head_frame: bool = True) -> Surface:
    window = rays.window(shape[0], float(shape[1].max()), in_head_frame)
    origin, directions = (rays.head_origin, rays.head) if in_head_frame else (CAMERA_POSITION, rays.world)
    return Surface(part, in_head_frame, window, _ellipsoid(origin, directions[window], shape)[0], _normal_of(shape))


def _hair_surface(rays: Rays, shell: Ellipsoid) -> Surface:
    window = rays.window(shell[0], float(shell[1].max()), True)
    distance = _hair_shell(rays.head_origin, rays.head[window], shell)
    return Surface(HAIR, True, window, distance, _normal_of(shell))


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


def _smooth_union_normal(points: np.ndarray, normal: np.ndarray, other: Ellipsoid) -> np.ndarray:
    """Blend a surface normal towards `other`'s near where the two ellipsoids meet, so the seam shades smoothly."""
    centre, radii = other
    outside = (((points - centre) / radii) ** 2).sum(axis=1) - 1.0  # 0 on the other surface, > 0 beyond it
    weight = 0.5 * np.exp(-np.clip(outside, 0.0, None) / SEAM_SOFTNESS)[:, None]
    blended = (1.0 - weight) * normal + weight * _normal_of(other)(points)
    return blended / np.linalg.norm(blended, axis=1, keepdims=True)


def _neck(rays: Rays) -> Surface:
    """The neck: an open vertical cylinder in the world frame."""
    middle = (max(NECK_BOTTOM, CAMERA_POSITION[1] - FIELD_HALF_HEIGHT - 0.2) + NECK_TOP) / 2
    reach = np.hypot(NECK_RADIUS, NECK_TOP - middle)
    window = rays.window(np.array([0.0, middle, NECK_Z]), float(reach), False)
    directions = rays.world[window]
    o = CAMERA_POSITION - np.array([0.0, 0.0, NECK_Z])
    a = directions[:, 0] ** 2 + directions[:, 2] ** 2
    b = o[0] * directions[:, 0] + o[2] * directions[:, 2]
    c = o[0] ** 2 + o[2] ** 2 - NECK_RADIUS**2
    disc = b * b - a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    y = o[1] + t * directions[:, 1]
    distance = np.where((disc >= 0) & (t > 0) & (y > NECK_BOTTOM) & (y < NECK_TOP), t, np.inf)

    def normal(points: np.ndarray) -> np.ndarray:
        radial = (points - np.array([0.0, 0.0, NECK_Z])) * np.array([1.0, 0.0, 1.0])
        return radial / np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-9)

    return Surface(SKIN, False, window, distance, normal)


def _eyes(points: np.ndarray, pose: Pose) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inside opening, albedo inside, lash line) for points in the head frame."""
    inside = np.zeros(len(points), dtype=bool)
    lash = np.zeros(len(points), dtype=bool)
    albedo = np.broadcast_to(SCLERA_RGB, points.shape).copy()
    for centre in EYE_CENTRES:
        u = (points[:, 0] - centre[0]) / EYE_HALF_WIDTH
        v = (points[:, 1] - centre[1]) / EYE_HALF_WIDTH
        width = np.clip(1.0 - u * u, 0.0, None) ** 0.8
        top = (-0.32 + 0.95 * pose.eye_open) * width
        bottom = -0.32 * width
        opening = (np.abs(u) < 1.0) & (v > bottom) & (v < top)
        lash |= (np.abs(u) < 1.05) & (v >= top) & (v < top + 0.1 + 0.12 * width) & ~opening
        radius = np.hypot(u, v - 0.02)
        albedo[opening & (radius < 0.5)] = pose.iris
        albedo[opening & (radius < 0.2)] = 0.03
        inside |= opening
    return inside, albedo, lash


def _brows(points: np.ndarray) -> np.ndarray:
    brow = np.zeros(len(points), dtype=bool)
    for side in (-1, 1):
        u = (points[:, 0] - side * EYE_CENTRES[1][0]) / BROW_HALF_WIDTH
        arch = BROW_Y + 0.045 * (1.0 - u * u) - 0.02 * u * side
        brow |= (np.abs(u) < 1.0) & (np.abs(points[:, 1] - arch) < BROW_THICKNESS * (1.0 - 0.4 * u * u))
    return brow


def _mouth(points: np.ndarray, pose: Pose) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lips, inside, teeth) masks for head-frame points; smile lifts the corners, mouth_open parts the lips."""
    half_width = MOUTH_HALF_WIDTH * (1.0 + 0.15 * max(pose.smile, 0.0))
    s = points[:, 0] / half_width
    across = np.sqrt(np.clip(1.0 - s * s, 0.0, None))
    centre = MOUTH_Y + pose.smile * (0.12 * s * s - 0.03)
    gap = pose.mouth_open * 0.2 * across
    upper = centre + 0.3 * gap + 0.006
    lower = centre - 0.7 * gap - 0.006
    within = np.abs(s) < 1.0
    inside = within & (points[:, 1] < upper) & (points[:, 1] > lower)
    lips = within & ~inside & (points[:, 1] < upper + 0.05 * across) & (points[:, 1] > lower - 0.065 * across)
    teeth = inside & (points[:, 1] > upper - 0.045 * across) & (np.abs(s) < 0.8)
    return lips, inside, teeth


def _paint_face(points: np.ndarray, albedo: np.ndarray, part: np.ndarray, pose: Pose) -> None:
    """Paint eyes, brows and mouth onto front-facing skull, jaw and eyeball points (in place)."""
    front = np.flatnonzero(points[:, 2] > 0.3)
    if front.size == 0:
        return
    points = points[front]
    paint = albedo[front]
    labels = part[front]
    eyes, eye_albedo, lash = _eyes(points, pose)
    paint[eyes] = eye_albedo[eyes]
    lid = (labels == EYE) & ~eyes  # eyeball outside the opening is covered by skin
    paint[lid] = pose.skin * 0.95
    labels[lid] = SKIN
    labels[eyes] = EYE
    paint[lash] = pose.hair * 0.4 + 0.02
    labels[lash] = EYE
    brow = _brows(points)
    paint[brow] = pose.hair * 0.75 + 0.03
    labels[brow] = BROW
    lips, inside, teeth = _mouth(points, pose)
    paint[lips] = pose.skin * LIP_TINT
    paint[inside] = MOUTH_INSIDE_RGB
    paint[teeth] = TEETH_RGB
    labels[lips | inside] = MOUTH
    albedo[front] = paint
    part[front] = labels


def _hair_texture(points: np.ndarray, pose: Pose) -> np.ndarray:
    """Brightness modulation that reads as strands (or curls)."""
    if pose.hair_style == "curly":
        curls = np.sin(23 * points[:, 0] + pose.strand_phase) * np.sin(23 * points[:, 1]) * np.sin(23 * points[:, 2])
        return 0.85 + 0.15 * curls
    angle = np.arctan2(points[:, 0], points[:, 1] + 0.6)
    return 0.88 + 0.12 * np.sin(60 * angle + pose.strand_phase)


def _nearest(surfaces: list[Surface], count: int) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest surface, its distance) per ray; a running minimum over each surface's window."""
    nearest = np.full(count, -1, dtype=np.intp)
    closest = np.full(count, np.inf)
    for index, surface in enumerate(surfaces):
        closer = surface.distance < closest[surface.rays]
        winners = surface.rays[closer]
        nearest[winners] = index
        closest[winners] = surface.distance[closer]
    return nearest, closest


def _background(pose: Pose, canvas: int) -> np.ndarray:
    """(N, 3) backdrop: the background colour, a little darker towards the top."""
    gradient = np.repeat(1.08 - 0.22 * np.linspace(1.0, 0.0, canvas), canvas)
    return pose.background[None, :] * gradient[:, None]


def _shade(rays: Rays, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """(colour (N, 3) float, part (N,) uint8) for every ray."""
    surfaces = _head_surfaces(rays, pose)
    surfaces += [_neck(rays), _ellipsoid_surface(CLOTH, rays, SHOULDERS, in_head_frame=False)]
    count = len(rays.world)
    nearest, _ = _nearest(surfaces, count)
    colour = _background(pose, rays.canvas)
    part = np.full(count, BACKGROUND, dtype=np.uint8)
    for index, surface in enumerate(surfaces):
        won = nearest[surface.rays] == index
        if not won.any():
            continue
        hit_rays = surface.rays[won]
        t = surface.distance[won][:, None]
        directions = rays.world[hit_rays]
        if surface.in_head_frame:
            points = rays.head_origin + rays.head[hit_rays] * t
            normal = surface.normal(points)
            if index < 2:  # skull and jaw: hide the crease where they meet
                normal = _smooth_union_normal(points, normal, SKULL if index == 1 else pose.jaw)
            normal = normal @ rays.rotation.T
        else:
            points = CAMERA_POSITION + directions * t
            normal = surface.normal(points)
        facing = np.einsum("ij,ij->i", normal, directions) > 0
        normal[facing] *= -1.0  # inner side of a hair shell: light it as seen
        ray_part = np.full(hit_rays.size, surface.part, dtype=np.uint8)
        base = {SKIN: pose.skin, HAIR: pose.hair, CLOTH: pose.shirt, EYE: pose.skin}[surface.part]
        albedo = np.broadcast_to(base, (hit_rays.size, 3)).copy()
        if surface.part == HAIR:
            albedo *= _hair_texture(points, pose)[:, None]
        if index < 2 or surface.part == EYE:  # skull, jaw and eyeballs carry the painted features
            _paint_face(points, albedo, ray_part, pose)
        if not surface.in_head_frame and surface.part == SKIN:
            albedo *= 0.82  # the neck sits in the jaw's shadow
        lambert = np.clip(normal @ LIGHT, 0.0, None)
        halfway = LIGHT - directions
        halfway /= np.sqrt(np.einsum("ij,ij->i", halfway, halfway))[:, None]
        gloss = np.where(ray_part == EYE, 0.35, np.where(ray_part == MOUTH, 0.12, 0.05))
        highlight = gloss * np.clip(np.einsum("ij,ij->i", normal, halfway), 0.0, 1.0) ** 30
        colour[hit_rays] = albedo * (AMBIENT + DIFFUSE * lambert)[:, None] + highlight[:, None]
        part[hit_rays] = ray_part
    return colour, part


def _rays(canvas: int, pose: Pose) -> Rays:
    rotation = pose.rotation
    world = camera_rays(canvas)
    return Rays(
        canvas=canvas,
        world=world,
        head=world @ rotation,  # rows: R^T d
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
        image = cv2.resize(colour.reshape(canvas, canvas, 3).astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)

    def segment(self, values: Mapping[str, float], size: int, seed: int = 0) -> np.ndarray:
        """(size, size) part id per pixel (BACKGROUND, SKIN, HAIR, EYE, BROW, MOUTH, CLOTH; MIXED on edges)."""
        canvas = size * SUPERSAMPLING
        pose = _pose(self.resolve(values), seed)
        _, part = _shade(_rays(canvas, pose), pose)
        blocks = part.reshape(size, SUPERSAMPLING, size, SUPERSAMPLING).transpose(0, 2, 1, 3).reshape(size, size, -1)
        pure = (blocks == blocks[:, :, :1]).all(axis=2)
        return np.where(pure, blocks[:, :, 0], MIXED).astype(np.uint8)
