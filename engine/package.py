"""Model packages: load, validate, import into the user's library, list.

A package is a folder or a `.puppetry` zip holding `manifest.json` and ONNX
graphs. Everything in it is untrusted input: the manifest is checked field by
field, graph files by hash and by their declared inputs and outputs, zips are
extracted without trusting member names, and anything that could unpickle is
refused before it is opened.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import platformdirs

from engine.errors import EditError, PackageError
from engine.resources import bundled_models_dir

if TYPE_CHECKING:
    from engine.puppets.base import Control

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PACKAGE_SUFFIX = ".puppetry"
POLARITIES = ("light_on_dark", "dark_on_light")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
REQUIRED_FIELDS = ("format_version", "name", "method", "editor", "image_size", "graphs")
# Suffixes of formats that unpickle on load; the engine never opens them.
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib"})
PICKLE_MAGIC = b"\x80"  # first byte of every pickle from protocol 2 on
# A zip bomb guard: packages hold a few small graphs and sample images.
MAX_ZIP_MEMBERS = 256
MAX_UNPACKED_BYTES = 2 * 1024**3

Shape = tuple[int | None, ...]


def name_part(text: str, limit: int = 28) -> str:
    """`text` in NAME_PATTERN's alphabet (lower case, each run of anything else one '-'), for a name built from
    a folder's or a file's name; "photos" where nothing is left."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "photos"


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph of a package: its role, file, hash and declared inputs/outputs."""

    role: str
    file: str
    sha256: str
    inputs: Mapping[str, Shape]
    outputs: Mapping[str, Shape]
    path: Path


@dataclass(frozen=True)
class Normalisation:
    """How photo pixels become model inputs: value range, grey or colour, and the model's polarity.

    `polarity` is the domain the model was trained on ("light_on_dark" for
    MNIST); editors invert regions of the opposite polarity. None: colour
    models where polarity means nothing.
    """

    range: tuple[float, float] = (-1.0, 1.0)
    grayscale: bool = False
    polarity: str | None = None


@dataclass(frozen=True)
class PuppetSection:
    """Which puppet poses the attribute, the controls the model serves, and the values held fixed."""

    kind: str
    controls: tuple[Control, ...]
    fixed: Mapping[str, float]


@dataclass(frozen=True)
class GuideSection:
    """What a guide-driven model carries over: domains, the attributes that move and stay, sample guides."""

    source_domain: str
    guide_domain: str
    moves: tuple[str, ...]
    stays: tuple[str, ...]
    samples: tuple[Path, ...]


@dataclass(frozen=True)
class ModelPackage:
    """A validated model package, as the manifest describes it; `path` is the folder it lives in."""

    name: str
    title: str
    method: str
    editor: str
    image_size: int
    channels: int
    normalisation: Normalisation
    puppet: PuppetSection | None
    guide: GuideSection | None
    graphs: Mapping[str, GraphSpec]
    provenance: Mapping[str, Any]
    metrics: Mapping[str, Any]
    path: Path
    source: Path = field(compare=False)

    def graph_path(self, role: str) -> Path:
        """The ONNX file for `role`; PackageError when the package has no such graph."""
        try:
            return self.graphs[role].path
        except KeyError:
            raise PackageError(
                f"model package '{self.name}' ({self.source}) has no '{role}' graph; "
                f"it has {sorted(self.graphs)}"
            ) from None


def load_package(source: str | os.PathLike[str], *, cache_dir: Path | None = None) -> ModelPackage:
    """Load and fully validate a package folder or `.puppetry` zip.

    A zip is extracted (safely) into `cache_dir`, by default a folder under
    the user cache keyed by the zip's hash, so loading it again is cheap.
    """
    source = Path(source)
    if source.is_dir():
        folder = source
    elif source.is_file() and zipfile.is_zipfile(source):
        folder = _extract_zip(source, cache_dir or _default_cache_dir())
    elif source.exists():
        raise PackageError(f"model package {source} is neither a folder nor a .puppetry zip")
    else:
        raise PackageError(f"model package {source} does not exist")
    return _load_folder(folder, source)


def import_package(
    source: str | os.PathLike[str], library_dir: Path | None = None, *, replace: bool = False
) -> ModelPackage:
    """Validate `source` and copy it into the user's model library; returns the library copy.

    The copy holds only regular files (no links) and lands atomically under
    the manifest's name, which NAME_PATTERN keeps a plain folder name.
    """
    package = load_package(source)
    library = Path(library_dir) if library_dir is not None else user_library_dir()
    library.mkdir(parents=True, exist_ok=True)
    target = library / package.name
    if target.exists() and not replace:
        raise PackageError(
            f"model package '{package.name}' is already in the library ({target}); "
            "remove it first or import with replace=True"
        )
    staging = Path(tempfile.mkdtemp(prefix=f".{package.name}-", dir=library))
    try:
        for file in _package_files(package.path, package.name):
            destination = staging / file.relative_to(package.path)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, destination)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("imported model package '%s' from %s into %s", package.name, source, target)
    return load_package(target)


def scan_packages(
    library_dir: Path | None = None, *, include_bundled: bool = True
) -> tuple[list[ModelPackage], list[PackageError]]:
    """Every package in the user library (first) and the bundled folder, plus the errors of broken ones."""
    folders = [Path(library_dir) if library_dir is not None else user_library_dir()]
    if include_bundled:
        folders.append(bundled_models_dir())
    packages: list[ModelPackage] = []
    errors: list[PackageError] = []
    for folder in folders:
        for candidate in _package_candidates(folder):
            try:
                packages.append(load_package(candidate))
            except PackageError as error:
                errors.append(error)
    return packages, errors


def list_packages(library_dir: Path | None = None, *, include_bundled: bool = True) -> list[ModelPackage]:
    """User and bundled packages; broken ones are skipped and logged, never silently."""
    packages, errors = scan_packages(library_dir, include_bundled=include_bundled)
    for error in errors:
        log.warning("skipped a model package: %s", error)
    return packages


def find_package(name_or_path: str, library_dir: Path | None = None) -> ModelPackage:
    """A package by name (user library wins over bundled) or by folder/zip path."""
    candidate = Path(name_or_path)
    if candidate.exists():
        return load_package(candidate)
    packages = list_packages(library_dir)
    for package in packages:
        if package.name == name_or_path:
            return package
    known = ", ".join(sorted({p.name for p in packages})) or "none installed"
    raise PackageError(f"no model package named '{name_or_path}' (known: {known})")


def user_library_dir() -> Path:
    """The user's model library: packages imported from the GUI or CLI."""
    return Path(platformdirs.user_data_dir("puppetry")) / "models"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks so large graphs do not sit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("puppetry")) / "packages"


def _package_candidates(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        entry for entry in folder.iterdir()
        if not entry.name.startswith(".")
        and ((entry.is_dir() and (entry / MANIFEST).is_file()) or entry.suffix == PACKAGE_SUFFIX)
    )


# ---- zip extraction ----------------------------------------------------------------------


def _extract_zip(archive: Path, cache_dir: Path) -> Path:
    """Extract `archive` into a cache folder named by its hash, refusing unsafe members.

    Every member name is checked before anything is written: no absolute
    paths, drive letters or `..`, no links, a bounded count and size. The
    extraction goes to a staging folder that is renamed into place.
    """
    with zipfile.ZipFile(archive) as bundle:
        members = [m for m in bundle.infolist() if not m.is_dir()]
        _check_zip_members(archive, members)
        target = cache_dir / sha256_file(archive)[:32]
        if (target / MANIFEST).is_file() or _single_subfolder_manifest(target):
            return _manifest_root(target, archive)
        cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache_dir))
        try:
            for member in members:
                destination = staging.joinpath(*PurePosixPath(member.filename).parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as reader, open(destination, "wb") as writer:
                    shutil.copyfileobj(reader, writer)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise PackageError(f"model package {archive} could not be extracted into {cache_dir}") from None
            # Another process extracted the same zip first: its copy is as good as ours.
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return _manifest_root(target, archive)


def _check_zip_members(archive: Path, members: list[zipfile.ZipInfo]) -> None:
    if len(members) > MAX_ZIP_MEMBERS:
        raise PackageError(f"model package {archive} holds {len(members)} files; at most {MAX_ZIP_MEMBERS} allowed")
    total = 0
    for member in members:
        name = member.filename
        parts = PurePosixPath(name).parts
        if (
            name.startswith(("/", "\\"))
            or "\\" in name
            or re.match(r"^[A-Za-z]:", name)
            or any(part in ("..", ".") for part in parts)
            or not parts
        ):
            raise PackageError(f"model package {archive} contains an unsafe path '{name}'; refusing to extract it")
        mode = member.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise PackageError(f"model package {archive} contains a symbolic link '{name}'; refusing to extract it")
        total += member.file_size
    if total > MAX_UNPACKED_BYTES:
        raise PackageError(f"model package {archive} unpacks to {total} bytes; at most {MAX_UNPACKED_BYTES} allowed")


def _single_subfolder_manifest(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / MANIFEST).is_file():
        return entries[0]
    return None


def _manifest_root(folder: Path, archive: Path) -> Path:
    """The folder holding manifest.json: the zip root or its one top-level folder."""
    if (folder / MANIFEST).is_file():
        return folder
    nested = _single_subfolder_manifest(folder)
    if nested is None:
        raise PackageError(f"model package {archive} has no {MANIFEST} at its root")
    return nested


# ---- validation --------------------------------------------------------------------------


def _package_files(folder: Path, name: str) -> list[Path]:
    """Every file of a package folder; links are refused so nothing outside it is read or copied."""
    files = []
    for root, dirs, names in os.walk(folder):
        for entry in [*dirs, *names]:
            if (Path(root) / entry).is_symlink():
                raise PackageError(
                    f"model package '{name}' ({folder}) contains a symbolic link "
                    f"'{Path(root, entry).relative_to(folder)}'; packages must hold plain files"
                )
        files.extend(Path(root) / entry for entry in names)
    return sorted(files)


def _refuse_pickles(folder: Path, name: str) -> None:
    """Refuse anything that could execute code when loaded: pickles by suffix, by magic byte, object arrays."""
    for file in _package_files(folder, name):
        where = f"model package '{name}' ({folder}) contains {file.relative_to(folder)}"
        if file.suffix.lower() in PICKLE_SUFFIXES:
            raise PackageError(f"{where}, a pickle-based file; packages may hold only ONNX graphs and images")
        with open(file, "rb") as handle:
            head = handle.read(1)
        if head == PICKLE_MAGIC:
            raise PackageError(f"{where}, which is a pickle; packages may hold only ONNX graphs and images")
        if file.suffix.lower() in (".npy", ".npz"):
            raise PackageError(f"{where}, a NumPy array file (may need allow_pickle); not allowed in packages")


def _load_folder(folder: Path, source: Path) -> ModelPackage:
    label = f"model package {source}"
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise PackageError(f"{label} has no {MANIFEST}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PackageError(f"{label}: {MANIFEST} is not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise PackageError(f"{label}: {MANIFEST} must hold a JSON object")
    missing = [key for key in REQUIRED_FIELDS if key not in manifest]
    if missing:
        raise PackageError(f"{label}: {MANIFEST} lacks required fields {missing}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise PackageError(
            f"{label}: format_version {manifest['format_version']!r} is not supported "
            f"(this Puppetry reads version {FORMAT_VERSION}); update Puppetry or re-export the model"
        )
    name = manifest["name"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PackageError(f"{label}: name {name!r} must be lower-case letters, digits, '.', '_' or '-' (≤64)")
    label = f"model package '{name}' ({source})"
    _refuse_pickles(folder, name)
    image_size = _positive_int(manifest["image_size"], label, "image_size")
    channels = _positive_int(manifest.get("channels", 3), label, "channels")
    package = ModelPackage(
        name=name,
        title=str(manifest.get("title", name)),
        method=_text(manifest["method"], label, "method"),
        editor=_text(manifest["editor"], label, "editor"),
        image_size=image_size,
        channels=channels,
        normalisation=_normalisation(manifest.get("normalisation", {}), label),
        puppet=_puppet_section(manifest["puppet"], label) if "puppet" in manifest else None,
        guide=_guide_section(manifest["guide"], folder, label) if "guide" in manifest else None,
        graphs=MappingProxyType(_graphs(manifest["graphs"], folder, label, image_size, channels)),
        provenance=MappingProxyType(_mapping(manifest.get("provenance", {}), label, "provenance")),
        metrics=MappingProxyType(_mapping(manifest.get("metrics", {}), label, "metrics")),
        path=folder,
        source=source,
    )
    _check_editor(package, label)
    return package


def _check_editor(package: ModelPackage, label: str) -> None:
    from engine import editors  # the registry imports this module: import late

    if package.editor not in editors.available():
        raise PackageError(
            f"{label}: editor '{package.editor}' is unknown (known: {', '.join(editors.available())}); "
            "install the plugin that provides it"
        )
    editors.editor_class(package.editor).check_package(package)


def _text(value: object, label: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise PackageError(f"{label}: '{key}' must be a non-empty string, not {value!r}")
    return value


def _positive_int(value: object, label: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PackageError(f"{label}: '{key}' must be a positive integer, not {value!r}")
    return value


def _mapping(value: object, label: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PackageError(f"{label}: '{key}' must be a JSON object, not {type(value).__name__}")
    return value


def _normalisation(value: object, label: str) -> Normalisation:
    section = _mapping(value, label, "normalisation")
    value_range = section.get("range", [-1.0, 1.0])
    if (
        not isinstance(value_range, list)
        or len(value_range) != 2
        or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value_range)
        or value_range[0] >= value_range[1]
    ):
        raise PackageError(f"{label}: normalisation.range must be [low, high] with low < high, not {value_range!r}")
    polarity = section.get("polarity")
    if polarity not in (None, *POLARITIES):
        raise PackageError(f"{label}: normalisation.polarity must be one of {POLARITIES} or null, not {polarity!r}")
    return Normalisation(
        range=(float(value_range[0]), float(value_range[1])),
        grayscale=bool(section.get("grayscale", False)),
        polarity=polarity,
    )


def _puppet_section(value: object, label: str) -> PuppetSection:
    from engine.puppets.base import Control

    section = _mapping(value, label, "puppet")
    kind = _text(section.get("kind"), label, "puppet.kind")
    raw_controls = section.get("controls", [])
    if not isinstance(raw_controls, list):
        raise PackageError(f"{label}: puppet.controls must be a list")
    controls = []
    for raw in raw_controls:
        try:
            controls.append(Control.from_dict(_mapping(raw, label, "puppet control")))
        except (EditError, TypeError, ValueError) as error:
            raise PackageError(f"{label}: puppet control {raw!r} is malformed ({error})") from None
    fixed = _mapping(section.get("fixed", {}), label, "puppet.fixed")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in fixed.values()):
        raise PackageError(f"{label}: puppet.fixed values must be numbers")
    return PuppetSection(kind=kind, controls=tuple(controls), fixed=MappingProxyType(dict(fixed)))


def _guide_section(value: object, folder: Path, label: str) -> GuideSection:
    section = _mapping(value, label, "guide")
    samples = []
    for sample in section.get("samples", []):
        samples.append(_inside(folder, sample, label, "guide sample"))
    return GuideSection(
        source_domain=str(section.get("source_domain", "")),
        guide_domain=str(section.get("guide_domain", "")),
        moves=tuple(str(m) for m in section.get("moves", [])),
        stays=tuple(str(s) for s in section.get("stays", [])),
        samples=tuple(samples),
    )


def _inside(folder: Path, relative: object, label: str, what: str) -> Path:
    """`folder / relative`, refusing names that point outside the package or do not exist."""
    if not isinstance(relative, str) or not relative:
        raise PackageError(f"{label}: {what} must be a file name, not {relative!r}")
    parts = PurePosixPath(relative).parts
    if relative.startswith(("/", "\\")) or "\\" in relative or ".." in parts or re.match(r"^[A-Za-z]:", relative):
        raise PackageError(f"{label}: {what} '{relative}' points outside the package")
    path = folder.joinpath(*parts)
    if not path.is_file():
        raise PackageError(f"{label}: {what} '{relative}' is missing from the package")
    return path


def _graphs(value: object, folder: Path, label: str, image_size: int, channels: int) -> dict[str, GraphSpec]:
    section = _mapping(value, label, "graphs")
    if not section:
        raise PackageError(f"{label}: 'graphs' is empty")
    graphs = {}
    for role, raw in section.items():
        entry = _mapping(raw, label, f"graphs.{role}")
        where = f"{label}: graph '{role}'"
        path = _inside(folder, entry.get("file"), label, f"graph '{role}' file")
        expected = entry.get("sha256")
        if not isinstance(expected, str):
            raise PackageError(f"{where} has no sha256")
        actual = sha256_file(path)
        if actual != expected.lower():
            raise PackageError(
                f"{where}: {path.name} has sha256 {actual[:12]}…, the manifest says {expected[:12]}…; "
                "the file is corrupt or was changed after export"
            )
        spec = GraphSpec(
            role=role,
            file=entry["file"],
            sha256=actual,
            inputs=MappingProxyType(_shapes(entry.get("inputs"), where, "inputs")),
            outputs=MappingProxyType(_shapes(entry.get("outputs"), where, "outputs")),
            path=path,
        )
        image_shape = spec.inputs.get("image")
        if image_shape is not None and tuple(image_shape[1:]) != (channels, image_size, image_size):
            raise PackageError(
                f"{where}: input 'image' is {list(image_shape)}, but the package declares "
                f"{channels} channels at {image_size}×{image_size}"
            )
        _check_onnx(spec, where)
        graphs[role] = spec
    return graphs


def _shapes(value: object, where: str, key: str) -> dict[str, Shape]:
    if not isinstance(value, dict) or not value:
        raise PackageError(f"{where}: '{key}' must map tensor names to shapes")
    shapes = {}
    for name, shape in value.items():
        if not isinstance(shape, list) or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0) for d in shape
        ):
            raise PackageError(f"{where}: {key} '{name}' shape must be a list of positive ints or null, not {shape!r}")
        shapes[name] = tuple(shape)
    return shapes


def _check_onnx(spec: GraphSpec, where: str) -> None:
    """Read the graph's signature without its weights and compare it with the manifest.

    External data (weights in side files) is refused: it would let a graph
    read files outside the package, and packages are meant to be self-contained.
    """
    import onnx
    from onnx.external_data_helper import uses_external_data

    try:
        model = onnx.load(str(spec.path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, ValueError, ... for a corrupt file
        raise PackageError(f"{where}: {spec.path.name} is not a readable ONNX file ({error})") from None
    if any(uses_external_data(tensor) for tensor in _all_tensors(model.graph)):
        raise PackageError(f"{where}: {spec.path.name} keeps weights in external files; re-export it self-contained")
    initialisers = {tensor.name for tensor in model.graph.initializer}
    actual_inputs = {v.name: _onnx_shape(v) for v in model.graph.input if v.name not in initialisers}
    actual_outputs = {v.name: _onnx_shape(v) for v in model.graph.output}
    for kind, declared, actual in (("inputs", spec.inputs, actual_inputs), ("outputs", spec.outputs, actual_outputs)):
        if set(declared) != set(actual):
            raise PackageError(
                f"{where}: {spec.path.name} has {kind} {sorted(actual)}, the manifest declares {sorted(declared)}"
            )
        for name, shape in declared.items():
            if not _shapes_match(shape, actual[name]):
                raise PackageError(
                    f"{where}: {kind[:-1]} '{name}' of {spec.path.name} has shape "
                    f"{list(actual[name])}, the manifest declares {list(shape)}"
                )


def _all_tensors(graph: Any) -> Iterable[Any]:
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _all_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _all_tensors(subgraph)


def _onnx_shape(value_info: Any) -> Shape:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)


def _shapes_match(declared: Shape, actual: Shape) -> bool:
    return len(declared) == len(actual) and all(d == a for d, a in zip(declared, actual))
