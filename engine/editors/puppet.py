"""The PuppetGAN editor: pose a puppet, carry the posed attribute onto the photo region.

Editing is `Gr(photo, puppet) = decoder_real(attribute(E(puppet)), rest(E(photo)))`:
the rest code comes from the photo (encoded once, in `prepare`), the
attribute code from the rendered puppet (encoded on every slider move, with
a small cache so moving back to a value is free).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from engine import puppets
from engine.errors import EditError
from engine.editors.base import (
    Editor,
    GraphSignature,
    LRUCache,
    from_model_output,
    opposite_polarity,
    to_model_input,
)
from engine.editors.tone import ToneMap
from engine.package import ModelPackage

ATTRIBUTE_CODE_CACHE = 256


@dataclass(frozen=True)
class PuppetState:
    """What `prepare` keeps of a photo region: its rest code, whether it was inverted, (grey models) its tones,
    and the served controls the puppet could read from it."""

    rest_code: np.ndarray  # (1, rest dims) float32
    inverted: bool
    tone: ToneMap | None = None
    measured: Mapping[str, float] = field(default_factory=dict)


class PuppetEditor(Editor):
    """PuppetGAN: controls are puppet values; the manifest says which the model serves and which are fixed."""

    name: ClassVar[str] = "puppet"
    manifest_section: ClassVar[str | None] = "puppet"
    graphs: ClassVar[Mapping[str, GraphSignature]] = {
        "encoder": (("image",), ("attribute_code", "rest_code")),
        "decoder_real": (("attribute_code", "rest_code"), None),
    }

    def __init__(self, package: ModelPackage, provider: str = "auto", threads: int | None = None) -> None:
        super().__init__(package, provider, threads)
        assert package.puppet is not None  # check_package guarantees it
        self.section = package.puppet
        self.puppet = puppets.load(self.section.kind)
        self.controls = {control.name: control for control in self.section.controls}
        self._attribute_codes: LRUCache[tuple[tuple[str, float], ...], np.ndarray] = LRUCache(ATTRIBUTE_CODE_CACHE)

    def prepare(self, region: np.ndarray) -> PuppetState:
        """Encode the photo region; a region of the opposite polarity is inverted first.

        Greyscale models get the region tone-mapped into their domain (see
        `engine.editors.tone`), so ink on paper looks like what they were
        trained on, and their output is coloured back with the region's tones.
        """
        self.check_region(region)
        normalisation = self.package.normalisation
        if normalisation.grayscale:
            tone = ToneMap.fit(region, normalisation.polarity)
            image = self._amount_to_input(tone.to_amount(region))
            inverted = tone.inverted
        else:
            tone = None
            inverted = opposite_polarity(region, normalisation.polarity)
            image = to_model_input(region, normalisation, self.package.channels, invert=inverted)
        rest_code = self.run("encoder", image=image)["rest_code"]
        measured = self._measure(image) if tone is None or tone.inked else {}
        return PuppetState(rest_code, inverted, tone, measured)

    def measure(self, state: PuppetState) -> dict[str, float]:
        """The photo's own pose for the controls the puppet can read (e.g. a digit's slant), measured in `prepare`."""
        return dict(state.measured)

    def apply(self, state: PuppetState, controls: Mapping[str, object]) -> np.ndarray:
        """Render the puppet at `controls`, take its attribute code, decode it with the photo's rest code."""
        values = self.puppet_values(controls)
        key = tuple(sorted(values.items()))
        attribute_code = self._attribute_codes.get_or_compute(key, lambda: self._encode_puppet(values))
        decoded = self.run("decoder_real", attribute_code=attribute_code, rest_code=state.rest_code)
        (image,) = decoded.values()
        if state.tone is not None:
            low, high = self.package.normalisation.range
            return state.tone.to_colour((image[0].mean(axis=0) - low) / (high - low))
        return from_model_output(image, self.package.normalisation, invert=state.inverted)

    def precompute(self, controls: Mapping[str, object], name: str, values: Iterable[float]) -> int:
        """Encode the puppet for each of `values` of control `name` (others at `controls`); returns how many.

        Attribute codes depend on the puppet alone, not on the photo, so a
        worker can fill the cache for a slider's steps ahead of the user: on
        slow puppets (face: ~40 ms per render at 128 px) moves then cost only
        the decoder and the paste-back.
        """
        count = 0
        for value in values:
            pose = self.puppet_values({**controls, name: value})
            self._attribute_codes.get_or_compute(tuple(sorted(pose.items())), lambda: self._encode_puppet(pose))
            count += 1
        return count

    def render_puppet(self, controls: Mapping[str, object]) -> np.ndarray:
        """The puppet exactly as the model sees it for `controls`: (S, S, 3) uint8 (for a live preview)."""
        return self.puppet.render(self.puppet_values(controls), self.image_size)

    def puppet_values(self, controls: Mapping[str, object]) -> dict[str, float]:
        """Manifest `fixed` values merged with the user's, each checked against the range the model serves."""
        values = {name: float(value) for name, value in self.section.fixed.items()}
        for name, raw in controls.items():
            control = self.controls.get(name)
            if control is None:
                raise EditError(
                    f"model '{self.package.name}' has no control '{name}'; it serves {sorted(self.controls)}"
                )
            values[name] = control.validate(raw)
        for name, control in self.controls.items():
            values.setdefault(name, float(control.default))
        return values

    def _measure(self, image: np.ndarray) -> dict[str, float]:
        """The served continuous controls the puppet reads from the model's view of the region, inside their ranges.

        Puppets render light on dark, so the view is read light on dark; a colour
        model (no polarity) gives no reading, as its view has no ink to measure,
        and neither does bare paper (`prepare` asks the tone map).
        Two decimals: the estimators are not finer, and a slider shows no more.
        """
        polarity = self.package.normalisation.polarity
        if polarity is None:
            return {}
        view = from_model_output(image, self.package.normalisation, invert=polarity != "light_on_dark")
        readings = self.puppet.measure(view)
        return {
            name: round(float(np.clip(readings[name], control.minimum, control.maximum)), 2)
            for name, control in self.controls.items()
            if name in readings and control.kind == "continuous" and np.isfinite(readings[name])
        }

    def _amount_to_input(self, amount: np.ndarray) -> np.ndarray:
        """(S, S) ink amount in [0, 1] → (1, C, S, S) float32 in the model's range."""
        low, high = self.package.normalisation.range
        scaled = (amount * (high - low) + low).astype(np.float32)
        return np.ascontiguousarray(np.broadcast_to(scaled, (1, self.package.channels, *scaled.shape)))

    def _encode_puppet(self, values: Mapping[str, float]) -> np.ndarray:
        render = self.puppet.render(values, self.image_size)
        image = to_model_input(render, self.package.normalisation, self.package.channels)
        return self.run("encoder", image=image)["attribute_code"]
