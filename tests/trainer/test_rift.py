"""RIFT: the capacity loss restricts the guide, the cycle and recovery terms vanish only where they must,
and the guided-translation metric puts its bracketing baselines where they belong."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.errors import TrainingError
from engine.imageio import load_rgb8
from trainer.data.shapes_abc import FACTOR_NAMES, FACTORS, SPLITS, ShapesABC
from trainer.evaluate_guided import (
    GuidedPairs,
    copy_guide,
    copy_source,
    evaluate_translation,
    is_heldout,
    sample_labels,
)
from trainer.methods.rift import (
    GuidedGenerator,
    SAMPLE_SIZE,
    RIFTConfig,
    RIFTModel,
    add_noise,
    capacity_loss,
    colour_balance_weights,
    cycle_loss,
    guess_pairs,
    guide_recovery_loss,
    learning_rate,
)
from trainer.nets import ResNetGenerator

TINY = {"image_size": 8, "guide_size": 2, "width": 4, "n_blocks": 1, "disc_width": 4, "batch_size": 4, "norm": "group",
        "input_skip": True}
SMALL = {**TINY, "image_size": 32, "guide_size": 8}  # the smallest size a PatchGAN scores


@pytest.fixture
def tiny_config() -> RIFTConfig:
    return RIFTConfig(**SMALL, image_noise=0.0, guide_noise=0.0)


class PassThrough(GuidedGenerator):
    """A generator that returns its inputs: image unchanged, the guide it was fed."""

    def forward(self, image: torch.Tensor, guide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return image, guide


class Shifting(GuidedGenerator):
    """A generator that brightens the image by 0.1 and answers with a guide made from the image."""

    def forward(self, image: torch.Tensor, guide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return image + 0.1, nn.functional.avg_pool2d(image[:, :1], self.scale)


@pytest.fixture
def images() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(4, 3, 32, 32, generator=generator) * 2 - 1
    b = torch.rand(4, 3, 32, 32, generator=generator) * 2 - 1
    return a, b


def _with_generators(config: RIFTConfig, kind: type[GuidedGenerator]) -> RIFTModel:
    model = RIFTModel(config)
    model.a2b, model.b2a = kind(config), kind(config)
    return model


def test_cycle_identity_and_recovery_vanish_for_generators_that_change_nothing(tiny_config, images):
    a, b = images
    model = _with_generators(tiny_config, PassThrough)
    out = model.forward_pass(a, b, torch.Generator().manual_seed(1))
    terms = model.generator_losses(a, b, out, torch.Generator().manual_seed(2))
    assert float(terms["cycle"]) == 0.0
    assert float(terms["identity"]) == 0.0
    assert float(terms["guide_recovery"]) == 0.0  # every guide is the empty one
    assert float(terms["capacity"]) == 0.0


def test_cycle_identity_and_recovery_are_positive_when_generators_change_images(tiny_config, images):
    a, b = images
    model = _with_generators(tiny_config, Shifting)
    out = model.forward_pass(a, b, torch.Generator().manual_seed(1))
    terms = model.generator_losses(a, b, out, torch.Generator().manual_seed(2))
    assert float(terms["cycle"]) == pytest.approx(2 * 0.2, abs=1e-5)  # two shifts of 0.1 per domain
    assert float(terms["identity"]) == pytest.approx(2 * 0.1, abs=1e-5)
    assert float(terms["guide_recovery"]) > 0.05  # the translation's guide is not the original's
    assert float(terms["capacity"]) > 0.1


def test_guide_recovery_and_cycle_losses_are_zero_only_on_equal_inputs(images):
    a, b = images
    assert float(guide_recovery_loss(a[:, :1], a[:, :1])) == 0.0
    assert float(guide_recovery_loss(a[:, :1], b[:, :1])) > 0.1
    assert float(cycle_loss(a, a)) == 0.0
    assert float(cycle_loss(a, b)) > 0.1
    assert float(cycle_loss(a, a, balance=1.0)) == 0.0


def _room_with_object() -> torch.Tensor:
    """A 32 px 'room': grey wall over a dark floor and a 4x4 red object, (1, 3, 32, 32) in [-1, 1]."""
    room = torch.full((1, 3, 32, 32), 0.2)
    room[:, :, 16:] = -0.8
    room[:, :, 20:24, 14:18] = torch.tensor([0.9, -0.9, -0.9]).view(1, 3, 1, 1)
    return room


def test_colour_balance_weights_average_one_and_lift_a_small_object_by_its_rarity():
    room = _room_with_object()
    object_mask = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    object_mask[:, :, 20:24, 14:18] = True
    plain = colour_balance_weights(room, 0.0)
    assert torch.allclose(plain, torch.ones_like(plain))
    for balance in (0.5, 1.0):
        weights = colour_balance_weights(room, balance)
        assert float(weights.mean()) == pytest.approx(1.0, abs=1e-5)
        ratio = float(weights[object_mask].mean() / weights[~object_mask].min())
        assert ratio == pytest.approx((512 / 16) ** balance, rel=1e-4)  # 512 wall pixels vs 16 object pixels
    at_full = colour_balance_weights(room, 1.0)
    assert float(at_full[object_mask].sum()) == pytest.approx(1024 / 3, rel=1e-4)  # each colour a third


def test_balanced_cycle_charges_a_lost_object_more_than_plain_l1():
    room = _room_with_object()
    object_lost = room.clone()
    object_lost[:, :, 20:24, 14:18] = -0.8  # the object painted over with the floor
    assert float(cycle_loss(object_lost, room, balance=1.0)) > 10 * float(cycle_loss(object_lost, room))


def test_guess_pairs_put_the_original_first_exactly_where_the_order_says(images):
    a, b = images
    pairs, original_first = guess_pairs(a, b, torch.Generator().manual_seed(3))
    for i in range(len(a)):
        first, second = pairs[i, :3], pairs[i, 3:]
        assert torch.equal(first, a[i] if original_first[i] == 1 else b[i])
        assert torch.equal(second, b[i] if original_first[i] == 1 else a[i])


@pytest.mark.parametrize("input_skip", [False, True])
def test_input_skip_alone_carries_the_image_to_the_output_when_the_body_is_silenced(input_skip, images):
    generator = ResNetGenerator(3, 3, width=4, n_downsampling=2, n_blocks=1, norm="none", input_skip=input_skip)
    with torch.no_grad():
        for parameter in generator.features.parameters():
            parameter.zero_()
    a, b = images
    difference = (generator(a) - generator(b)).abs().max().item()
    assert (difference > 1e-3) == input_skip


def test_guide_of_is_the_guide_output_for_an_empty_guide_input(tiny_config, images):
    a, _ = images
    generator = GuidedGenerator(tiny_config)
    guide = generator.guide_of(a)
    assert guide.shape == (4, 1, 8, 8)
    assert torch.equal(guide, generator(a, torch.zeros(4, 1, 8, 8))[1])


def _train_guide_channel(w_capacity: float, sigma: float, seed: int = 0) -> tuple[float, float]:
    """Fit a tiny guide encoder whose noisy guide must let a linear reader recover a per-image level.

    Returns (mean |guide|, reader's final squared error) after a short fit.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    config = RIFTConfig(**{**TINY, "norm": "none"})  # a per-image norm would erase the constant level
    encoder = GuidedGenerator(config)
    reader = nn.Linear(4, 1)
    optimizer = torch.optim.Adam([*encoder.parameters(), *reader.parameters()], lr=1e-2)
    for _ in range(120):
        level = torch.rand(16, 1, generator=generator) * 2 - 1  # the information to carry, (B, 1)
        image = level.view(-1, 1, 1, 1).expand(-1, 3, 8, 8)
        guide = encoder.guide_of(image)  # (B, 1, 2, 2)
        noisy = add_noise(guide, sigma, generator)
        error = torch.mean((reader(noisy.flatten(1)) - level) ** 2)
        loss = error + w_capacity * capacity_loss(guide)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        level = torch.linspace(-1, 1, 64).view(-1, 1)
        guide = encoder.guide_of(level.view(-1, 1, 1, 1).expand(-1, 3, 8, 8))
        errors = [torch.mean((reader(add_noise(guide, sigma, generator).flatten(1)) - level) ** 2) for _ in range(8)]
    return float(guide.abs().mean()), float(torch.stack(errors).mean())


def test_capacity_loss_shrinks_the_guide_and_what_can_be_read_back_through_its_noise():
    free_norm, free_error = _train_guide_channel(w_capacity=0.0, sigma=0.3)
    restricted_norm, restricted_error = _train_guide_channel(w_capacity=2.0, sigma=0.3)
    assert restricted_norm < 0.5 * free_norm
    assert restricted_error > 2.0 * free_error


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    config = RIFTConfig(**TINY, steps=100, decay_start=0.5, lr=1e-4)
    assert learning_rate(config, 10) == pytest.approx(1e-4)
    assert learning_rate(config, 75) == pytest.approx(0.5e-4)
    assert learning_rate(config, 100) == 0.0


def test_discriminators_step_at_their_share_of_the_scheduled_rate(tmp_path):
    from trainer.methods.rift import RIFT

    config = RIFTConfig(**SMALL, steps=100, decay_start=0.5, lr=1e-4, disc_lr_ratio=0.25,
                        classifier=str(tmp_path / "absent.safetensors"))
    method = RIFT(config, torch.device("cpu"), seed=0)
    method.train_step(75, torch.Generator().manual_seed(0))
    assert method.opt_generators.param_groups[0]["lr"] == pytest.approx(0.5e-4)
    assert method.opt_discriminators.param_groups[0]["lr"] == pytest.approx(0.125e-4)


def test_the_cycle_is_colour_balanced_only_from_cycle_balance_after(tmp_path, monkeypatch):
    from trainer.methods.rift import RIFT

    config = RIFTConfig(**SMALL, steps=100, cycle_balance=0.7, cycle_balance_after=50,
                        classifier=str(tmp_path / "absent.safetensors"))
    method = RIFT(config, torch.device("cpu"), seed=0)
    used = []
    original = method.model.generator_losses

    def recording(a, b, out, generator, cycle_balance=0.0):
        used.append(cycle_balance)
        return original(a, b, out, generator, cycle_balance)

    monkeypatch.setattr(method.model, "generator_losses", recording)
    for step in (0, 49, 50, 99):
        method.train_step(step, torch.Generator().manual_seed(0))
    assert used == [0.0, 0.0, 0.7, 0.7]


@pytest.mark.parametrize("setting", [{"cycle_balance": 1.5}, {"cycle_balance": -0.1}, {"cycle_balance_after": -5}])
def test_cycle_balance_outside_its_range_is_refused(setting):
    with pytest.raises(TrainingError, match=next(iter(setting))):
        RIFTConfig(**TINY, **setting)


# ----------------------------------------------------------------- guided evaluation baselines

def _encode_labels(labels: np.ndarray) -> np.ndarray:
    """Tiny images whose first six pixels hold the factor classes, so a perfect reader is exact."""
    images = np.zeros((len(labels), 4, 8, 3), np.uint8)
    images[:, 0, :6, 0] = labels
    return images


def _read_labels(images: np.ndarray) -> np.ndarray:
    return images[:, 0, :6, 0].astype(np.int64)


def _domain_labels(split: int, domain: str, n: int, rng: np.random.Generator) -> np.ndarray:
    factors = SPLITS[split]
    held = factors.specific_b if domain == "A" else factors.specific_a
    labels = np.stack([rng.integers(0, factor.classes, n) for factor in FACTORS], axis=1)
    for name in held:
        labels[:, FACTOR_NAMES.index(name)] = 0
    return labels


@pytest.fixture
def split1_pairs() -> dict[str, GuidedPairs]:
    rng = np.random.default_rng(0)
    a, b = _domain_labels(1, "A", 200, rng), _domain_labels(1, "B", 200, rng)
    return {
        "a2b": GuidedPairs("a2b", _encode_labels(a), a, _encode_labels(b), b),
        "b2a": GuidedPairs("b2a", _encode_labels(b), b, _encode_labels(a), a),
    }


def test_copy_source_keeps_every_shared_factor_and_takes_no_specific_one(split1_pairs):
    rows, summary = evaluate_translation(copy_source, _read_labels, split1_pairs, split=1)
    assert {r.attribute for r in rows if r.role == "shared"} == {"object_hue", "shape"}
    assert all(r.accuracy == 1.0 for r in rows if r.role == "shared")
    assert all(r.accuracy == 0.0 for r in rows if r.role == "specific")
    assert summary["ACC"] == pytest.approx(50.0)
    assert summary["RD"] == pytest.approx(100.0)


def test_copy_guide_takes_every_specific_factor_and_keeps_no_shared_one(split1_pairs):
    rows, summary = evaluate_translation(copy_guide, _read_labels, split1_pairs, split=1)
    assert {r.attribute for r in rows if r.role == "specific" and r.direction == "a2b"} == {"scale", "orientation"}
    assert all(r.accuracy == 0.0 for r in rows if r.role == "shared")
    assert all(r.accuracy == 1.0 for r in rows if r.role == "specific")
    assert summary["RD"] == pytest.approx(100.0)


def test_a_perfect_translation_scores_full_accuracy_and_zero_discrepancy(split1_pairs):
    split = SPLITS[1]

    def perfect(sources: np.ndarray, guides: np.ndarray, direction: str) -> np.ndarray:
        source_labels, guide_labels = _read_labels(sources), _read_labels(guides)
        from_guide = split.specific_b if direction == "a2b" else split.specific_a
        labels = source_labels.copy()
        for name in from_guide:
            k = FACTOR_NAMES.index(name)
            labels[:, k] = guide_labels[:, k]
        return _encode_labels(labels)

    _, summary = evaluate_translation(perfect, _read_labels, split1_pairs, split=1)
    assert summary["ACC"] == pytest.approx(100.0)
    assert summary["RD"] == pytest.approx(0.0)


@pytest.mark.parametrize("domain", ["A", "B"])
def test_training_draws_never_contain_a_heldout_combination_and_evaluation_draws_only_those(domain):
    data = ShapesABC(1, size=8)
    rng = np.random.default_rng(0)
    assert 0.07 < is_heldout(data.sample_labels(domain, 5000, rng)).mean() < 0.13
    assert not is_heldout(sample_labels(data, domain, 500, rng, heldout=False)).any()
    heldout = sample_labels(data, domain, 500, rng, heldout=True)
    assert is_heldout(heldout).all()
    for name in data.varying(domain):  # every value of every varying factor still occurs
        k = FACTOR_NAMES.index(name)
        assert len(np.unique(heldout[:, k])) == FACTORS[k].classes


# ----------------------------------------------------------------- export

SERVED = {"a2b": (("scale", "orientation"), "B"), "b2a": (("floor_hue", "wall_hue"), "A")}


@pytest.fixture(scope="module", params=sorted(SERVED))
def exported(request, tmp_path_factory):
    """A tiny RIFT after one step, exported as a guide package for each direction (no classifier: no table)."""
    from trainer.methods.rift import RIFT

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    config = RIFTConfig(**SMALL, classifier=str(tmp_path_factory.mktemp("none") / "absent.safetensors"),
                        serve_direction=request.param)
    method = RIFT(config, torch.device("cpu"), seed=0)
    method.train_step(0, torch.Generator().manual_seed(0))
    package = method.export(tmp_path_factory.mktemp("pkg") / "shapes-split1", {"steps": 1, "seed": 0})
    torch.set_num_threads(threads)
    return method, package


def test_exported_guide_package_edits_like_the_torch_model_in_its_direction(exported):
    from engine.editors import load as load_editor
    from engine.package import load_package

    method, folder = exported
    direction = method.config.serve_direction
    moves, guide_domain = SERVED[direction]
    package = load_package(folder)
    assert package.editor == "guide"
    assert package.guide.moves == moves
    assert package.guide.stays == ("object_hue", "shape")
    assert package.guide.guide_domain.endswith(f"domain {guide_domain}")
    assert len(package.guide.samples) == 12
    assert max(package.provenance["parity_max_abs_diff"].values()) < 1e-4
    assert package.provenance["config"]["serve_direction"] == direction  # the whole config: the GUI's recipe
    scenes_a, scenes_b = method.preview_scenes["A"], method.preview_scenes["B"]
    source, guide = (scenes_a[0], scenes_b[0]) if direction == "a2b" else (scenes_b[0], scenes_a[0])
    editor = load_editor(package)
    edited = editor.apply(editor.prepare(source), {"guide": guide})
    expected = method.translate(source[None], guide[None], direction)[0]
    other = method.translate(source[None], guide[None], "b2a" if direction == "a2b" else "a2b")[0]
    assert np.abs(edited.astype(int) - other.astype(int)).max() > 1
    assert np.abs(edited.astype(int) - expected.astype(int)).max() <= 1


def test_training_preview_shows_both_directions(exported):
    method, _ = exported
    size = method.data.size
    preview = method.preview()
    a2b_height = 5 * size  # the guides row and four sources
    assert preview.shape == (2 * a2b_height + size // 2, 7 * size, 3)
    scenes_a, scenes_b = method.preview_scenes["A"], method.preview_scenes["B"]
    b2a = preview[a2b_height + size // 2:]
    np.testing.assert_array_equal(preview[size:2 * size, :size], scenes_a[0])  # first A source, top half
    np.testing.assert_array_equal(b2a[size:2 * size, :size], scenes_b[0])  # first B source, bottom half
    expected = method.translate(scenes_b[:1], scenes_a[:1], "b2a")[0]
    np.testing.assert_array_equal(b2a[size:2 * size, size:2 * size], expected)


# ----------------------------------------------------------------- the user's own two domains

@pytest.fixture(scope="module")
def two_photo_folders(tmp_path_factory) -> tuple[str, str]:
    """Two folders of 16 photos each: reddish "day" scenes and bluish "night" ones, at odd sizes."""
    from engine.imageio import save_image

    rng = np.random.default_rng(5)
    folders = []
    for name, tint in (("Day Photos", (200, 90, 60)), ("night", (30, 40, 150))):
        root = tmp_path_factory.mktemp("user") / name
        root.mkdir()
        for index in range(16):
            photo = np.clip(np.array(tint) + rng.normal(0, 25, (40, 56, 3)), 0, 255).astype(np.uint8)
            save_image(root / f"{index:02d}.png", photo)
        folders.append(str(root))
    return folders[0], folders[1]


@pytest.mark.parametrize("setting", [{"domain_a": "/photos/day"}, {"domain_b": "/photos/night"}])
def test_one_users_domain_without_the_other_is_refused(setting):
    with pytest.raises(TrainingError, match=next(iter(setting))):
        RIFTConfig(**TINY, **setting)


def test_a_run_on_the_users_two_folders_trains_on_each_and_exports_an_unscored_guide_package(two_photo_folders,
                                                                                             tmp_path):
    from engine.editors import load as load_editor
    from engine.package import load_package
    from trainer.methods.rift import RIFT, package_evaluation

    day, night = two_photo_folders
    config = RIFTConfig(**SMALL, domain_a=day, domain_b=night, serve_direction="b2a")
    method = RIFT(config, torch.device("cpu"), seed=0)
    a, b = method.draw_batch(torch.Generator().manual_seed(0))
    assert float(a[:, 0].mean()) > float(a[:, 2].mean()) and float(b[:, 2].mean()) > float(b[:, 0].mean())
    assert method.evaluate() is None
    method.train_step(0, torch.Generator().manual_seed(0))
    assert method.preview().shape == (2 * 5 * 32 + 16, 7 * 32, 3)
    package = load_package(method.export(tmp_path / "pkg", {"steps": 1, "seed": 0}))
    assert package.name == "night-to-day-photos" and package.editor == "guide"
    assert (package.guide.source_domain, package.guide.guide_domain) == ("night", "Day Photos")
    assert "Day Photos (16 images)" in package.provenance["data"]
    assert package.guide.moves == () and package.guide.stays == ()
    assert package.metrics["table"] == [] and "user's own photos" in package.metrics["notes"]
    assert len(package.guide.samples) == 12
    sample = load_rgb8(package.guide.samples[0])
    assert sample.shape == (SAMPLE_SIZE, SAMPLE_SIZE, 3) and sample[..., 0].mean() > sample[..., 2].mean()
    editor = load_editor(package)
    night_photo, day_guide = method.photos["B"].images[0], method.photos["A"].images[0]
    edited = editor.apply(editor.prepare(night_photo), {"guide": day_guide})
    expected = method.translate(night_photo[None], day_guide[None], "b2a")[0]
    assert np.abs(edited.astype(int) - expected.astype(int)).max() <= 1
    with pytest.raises(TrainingError, match="Not measured"):
        package_evaluation(package)


def test_evaluating_a_run_on_the_users_photos_says_it_is_not_measured(two_photo_folders, tmp_path, capsys):
    from trainer.cli import main as train_main

    day, night = two_photo_folders
    settings = [f"{key}={str(value).lower() if isinstance(value, bool) else value}"
                for key, value in {**SMALL, "domain_a": day, "domain_b": night}.items()]
    code = train_main(["train", "--method", "rift", "--name", "day-night", "--runs-dir", str(tmp_path), "--steps", "1",
                       "--threads", "1", *(part for setting in settings for part in ("--set", setting))])
    assert code == 0
    capsys.readouterr()
    assert train_main(["evaluate", str(tmp_path / "day-night")]) != 0
    assert "user's own photos" in capsys.readouterr().err
