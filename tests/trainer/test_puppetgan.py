"""PuppetGAN: every loss is zero exactly where it should be, training lowers reconstruction, export is faithful."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from engine import puppets
from engine.errors import TrainingError
from engine.imageio import save_image
from engine.package import load_package
from engine.puppets.digit_measures import MEASURES, measure_rotation, measure_size
from trainer.data.mnist import mnist_split
from trainer.data.tensors import to_pixels, to_tensor
from trainer.evaluate import canonicalise, evaluate_target, package_edit_function
from trainer.methods import load
from trainer.methods.puppetgan import (
    PuppetGAN,
    PuppetGANConfig,
    PuppetGANNets,
    attribute_cycle_loss,
    code_invariance_loss,
    cycle_loss,
    discriminator_losses,
    discriminator_view,
    disentanglement_loss,
    edit_ink_height_loss,
    generator_losses,
    ink_height,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    photo_pose_invariance_loss,
    pose_equivariance_loss,
    pose_warp,
    reconstruction_loss,
    swap_back_loss,
    weighted_total,
)

L1_LOSSES = [reconstruction_loss, disentanglement_loss, cycle_loss, attribute_cycle_loss, swap_back_loss,
             pose_equivariance_loss, photo_pose_invariance_loss]


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.fixture
def tiny_config() -> PuppetGANConfig:
    return PuppetGANConfig(width=8, discriminator_width=8, batch_size=4, triplet_bank=12, eval_inputs=10,
                           eval_references=3, export_grid_inputs=10, attribute_range=(-40.0, 25.0),
                           w_swap_back=10.0, w_code_invariance=2.0, w_edit_attribute_code=2.0,
                           w_pose_equivariance=5.0, lr_generator=2e-3)


@pytest.fixture
def tiny_method(tiny_config: PuppetGANConfig) -> PuppetGAN:
    torch.manual_seed(0)
    return PuppetGAN(tiny_config, torch.device("cpu"), seed=0)


@pytest.mark.parametrize("loss", L1_LOSSES, ids=lambda f: f.__name__)
def test_l1_losses_are_zero_on_a_perfect_match_and_positive_otherwise(loss, images: torch.Tensor) -> None:
    assert float(loss(images, images.clone())) == 0.0
    assert float(loss(images + 0.5, images)) == pytest.approx(0.5)


def test_lsgan_generator_loss_is_zero_when_fakes_score_one() -> None:
    assert float(lsgan_generator_loss(torch.ones(2, 1, 2, 2))) == 0.0
    assert float(lsgan_generator_loss(torch.zeros(2, 1, 2, 2))) == 1.0


def test_lsgan_discriminator_loss_is_zero_only_when_it_tells_real_from_fake() -> None:
    ones, zeros = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    assert float(lsgan_discriminator_loss(ones, zeros)) == 0.0
    assert float(lsgan_discriminator_loss(zeros, ones)) == 1.0


def test_code_invariance_loss_is_zero_for_equal_codes_and_scale_free() -> None:
    codes = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    other = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    assert float(code_invariance_loss(codes, codes.clone())) == 0.0
    unrelated = float(code_invariance_loss(codes, other))
    assert unrelated == pytest.approx(1.0, abs=0.15)
    assert float(code_invariance_loss(0.01 * codes, 0.01 * other)) == pytest.approx(unrelated, rel=1e-3)


def test_the_discriminators_view_shifts_and_blanks_ink_but_never_invents_it() -> None:
    digits = to_tensor(mnist_split("test").images[:16]).requires_grad_()
    seen = discriminator_view(digits, torch.Generator().manual_seed(0))
    assert seen.shape == digits.shape and float(seen.detach().min()) >= -1.0 and float(seen.detach().max()) <= 1.0
    ink, seen_ink = (digits.detach() + 1).sum(dim=(1, 2, 3)), (seen.detach() + 1).sum(dim=(1, 2, 3))
    assert bool((seen_ink <= ink + 1e-3).all()) and float(seen_ink.sum()) < 0.9 * float(ink.sum())
    assert not torch.equal(seen, discriminator_view(digits, torch.Generator().manual_seed(1)))
    blank = torch.full((2, 3, 32, 32), -1.0)
    assert torch.equal(discriminator_view(blank, torch.Generator().manual_seed(0)), blank)
    seen.sum().backward()
    assert float(digits.grad.abs().sum()) > 0


def test_with_discriminator_augmentation_both_sides_judge_the_augmented_views(tiny_config) -> None:
    config = dataclasses.replace(tiny_config, discriminator_augment=True)
    torch.manual_seed(0)
    method = PuppetGAN(config, torch.device("cpu"), seed=0)
    batch = method.draw_batch()
    with torch.no_grad():
        plain, _ = generator_losses(method.nets, tiny_config, batch, torch.Generator().manual_seed(0))
        augmented, fakes = generator_losses(method.nets, config, batch, torch.Generator().manual_seed(0))
        plain_d = discriminator_losses(method.nets, batch, fakes)
        augmented_d = discriminator_losses(method.nets, batch, fakes,
                                           lambda images: discriminator_view(images, torch.Generator().manual_seed(0)))
    assert float(augmented["reconstruction"]) == pytest.approx(float(plain["reconstruction"]))
    assert float(augmented["adversarial"]) != pytest.approx(float(plain["adversarial"]))
    assert float(augmented_d["discriminator_real"]) != pytest.approx(float(plain_d["discriminator_real"]))
    assert all(np.isfinite(value) for value in method.train_step(0, torch.Generator().manual_seed(0)).values())


def test_ink_height_reads_what_the_evaluation_reads_and_passes_gradients() -> None:
    digits = to_tensor(mnist_split("test").images[:20]).requires_grad_()
    heights = ink_height(digits)
    np.testing.assert_allclose(heights.detach().numpy(), measure_size(to_pixels(digits.detach())), atol=1e-5)
    heights.sum().backward()
    assert float(digits.grad.abs().sum()) > 0


def test_edit_ink_height_loss_is_zero_when_the_edit_is_as_tall_as_posed() -> None:
    edits = to_tensor(mnist_split("test").images[:4])
    heights = ink_height(edits)
    assert float(edit_ink_height_loss(edits, heights)) == pytest.approx(0.0, abs=1e-6)
    assert float(edit_ink_height_loss(edits, heights + 0.1)) == pytest.approx(0.1, abs=1e-5)


def test_a_size_run_with_the_ink_height_weight_trains_on_the_edits_height(tiny_config: PuppetGANConfig) -> None:
    config = dataclasses.replace(tiny_config, attribute="size", attribute_range=(0.8, 1.2), w_pose_equivariance=0.0,
                                 w_edit_ink_height=10.0)
    torch.manual_seed(0)
    method = PuppetGAN(config, torch.device("cpu"), seed=0)
    batch = method.draw_batch()
    losses, fakes = generator_losses(method.nets, config, batch, torch.Generator().manual_seed(0))
    edits = fakes["real"][config.batch_size:]  # Gr(a, b1), after Gr(b1, b1)
    expected = float(edit_ink_height_loss(edits.detach(), batch["pose_b1"]))
    assert float(losses["edit_ink_height"].detach()) == pytest.approx(expected)
    without = weighted_total(losses, dataclasses.replace(config, w_edit_ink_height=0.0))
    added = float((weighted_total(losses, config) - without).detach())
    assert added == pytest.approx(10.0 * expected, rel=1e-4)


def test_paper_only_config_adds_no_extra_terms() -> None:
    nets = PuppetGANNets(PuppetGANConfig(width=8, discriminator_width=8))
    batch = {name: torch.rand(2, 3, 32, 32) * 2 - 1 for name in ("a", "b1", "b2", "b3")}
    losses, _ = generator_losses(nets, PuppetGANConfig(), batch, torch.Generator().manual_seed(0))
    assert set(losses) == {"reconstruction", "disentanglement", "cycle", "attribute_cycle_synthetic",
                           "attribute_cycle_real", "adversarial"}


def test_generator_losses_name_every_term_of_the_paper(tiny_config: PuppetGANConfig) -> None:
    config = dataclasses.replace(tiny_config, w_photo_pose_invariance=5.0, real_max_rotation=20.0)
    torch.manual_seed(0)
    nets = PuppetGANNets(config)
    batch = {name: torch.rand(2, 3, 32, 32) * 2 - 1 for name in ("a", "b1", "b2", "b3", "a_reposed")}
    batch["pose_b1"] = torch.tensor([-30.0, 20.0])
    losses, fakes = generator_losses(nets, config, batch, torch.Generator().manual_seed(0))
    assert set(losses) == {"reconstruction", "disentanglement", "cycle", "attribute_cycle_synthetic",
                           "attribute_cycle_real", "swap_back", "code_invariance", "edit_attribute_code",
                           "pose_equivariance", "photo_pose_invariance", "adversarial"}
    assert all(float(value.detach()) > 0 for value in losses.values())
    expected = sum(getattr(config, f"w_{name}") * float(value.detach()) for name, value in losses.items())
    assert float(weighted_total(losses, config).detach()) == pytest.approx(expected, rel=1e-5)
    assert fakes["real"].shape == (4, 3, 32, 32) and fakes["synthetic"].shape == (4, 3, 32, 32)


def test_disentanglement_loss_is_zero_when_the_synthetic_decoder_renders_b3(tiny_config: PuppetGANConfig) -> None:
    """With b1 = b2 = b3 (one puppet image) and Ds reproducing it, Gs(b2, b1) ~ b3 holds exactly."""
    nets = PuppetGANNets(tiny_config)
    image = torch.full((2, 3, 32, 32), -1.0)
    with torch.no_grad():
        for module in nets.decoder_synthetic.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                module.weight.zero_()
                module.bias.fill_(-20.0)  # tanh saturates at -1: a black image, whatever the code
    batch = {**{name: image for name in ("a", "b1", "b2", "b3")}, "pose_b1": torch.zeros(2)}
    losses, _ = generator_losses(nets, tiny_config, batch, torch.Generator().manual_seed(0))
    assert float(losses["disentanglement"].detach()) == pytest.approx(0.0, abs=1e-6)


def test_puppetgan_is_found_by_name() -> None:
    assert load("puppetgan") is PuppetGAN


def test_a_few_training_steps_lower_the_reconstruction_loss(tiny_method: PuppetGAN) -> None:
    torch.manual_seed(1)
    batch = tiny_method.draw_batch()

    def reconstruction() -> float:
        with torch.no_grad():
            losses, _ = generator_losses(tiny_method.nets, tiny_method.config, batch, torch.Generator().manual_seed(0))
        return float(losses["reconstruction"])

    before = reconstruction()
    generator = torch.Generator().manual_seed(0)
    for step in range(12):
        losses = tiny_method.train_step(step, generator)
    assert all(np.isfinite(list(losses.values())))
    assert reconstruction() < 0.7 * before


def test_state_round_trip_reproduces_the_batch_order(tiny_method: PuppetGAN) -> None:
    state = json.loads(json.dumps(tiny_method.state()))
    first = tiny_method.draw_batch()["a"]
    tiny_method.load_state(state)
    assert torch.equal(tiny_method.draw_batch()["a"], first)


def test_export_writes_graphs_that_edit_like_the_torch_model(tiny_method: PuppetGAN, tmp_path) -> None:
    package_dir = tiny_method.export(tmp_path / "pkg", {"steps": 0, "seed": 0})
    package = load_package(package_dir)
    assert package.editor == "puppet" and package.puppet.kind == "digits"
    assert package.puppet.controls[0].name == "rotation"
    assert (package.puppet.controls[0].minimum, package.puppet.controls[0].maximum) == (-40.0, 25.0)
    assert package.normalisation.polarity == "light_on_dark" and package.normalisation.grayscale
    assert set(package.metrics["table"][0]) == {"attribute", "Acc", "r_attr", "r_rest", "V_rest"}
    assert max(package.provenance["parity_max_abs_diff"].values()) < 1e-4
    grid = tiny_method.grid()
    through_onnx = package_edit_function(package)(grid.inputs[:4], grid.references)
    through_torch = tiny_method.edit(grid.inputs[:4], grid.references)
    assert np.abs(through_onnx.astype(int) - through_torch.astype(int)).max() <= 1


def test_evaluate_measures_a_package_through_its_onnx_graphs(tiny_method: PuppetGAN, tmp_path) -> None:
    package_dir = tiny_method.export(tmp_path / "pkg", {"steps": 0, "seed": 0})
    rows, grid, outputs = evaluate_target(package_dir, n_inputs=10, n_references=3)
    assert [row.name for row in rows][:2] == ["identity (output = input)", "puppet copy (output = ref)"]
    assert rows[2].name == "digits-rotation (ONNX)"
    assert outputs.shape == (3, 10, 32, 32, 3)
    torch_row = grid.metrics("torch", tiny_method.edit(grid.inputs, grid.references))
    assert rows[2].r_attr == pytest.approx(torch_row.r_attr, abs=0.02)


def test_real_digits_get_the_configured_size_and_turn_and_are_left_alone_without_them(tiny_config) -> None:
    def real_batch(**settings) -> np.ndarray:
        method = PuppetGAN(dataclasses.replace(tiny_config, batch_size=16, **settings), torch.device("cpu"), seed=0)
        return to_pixels(method.draw_batch()["a"])

    plain = real_batch()
    train = mnist_split("train").images
    assert (train[None] == plain[:, None]).all(axis=(2, 3, 4)).any(axis=1).all()  # untouched training digits
    assert np.median(np.abs(measure_size(real_batch(real_size_range=(1.15, 1.15))) - 1.15)) < 0.03
    turned = measure_rotation(real_batch(real_max_rotation=40.0)) - measure_rotation(plain)
    assert 10.0 < np.median(np.abs(turned)) < 40.0  # same digits (same draws), each turned by up to 40 degrees


def test_the_photo_pose_loss_sees_each_real_digit_again_at_another_pose(tiny_config) -> None:
    config = dataclasses.replace(tiny_config, batch_size=16, real_max_rotation=40.0, w_photo_pose_invariance=1.0)
    batch = PuppetGAN(config, torch.device("cpu"), seed=0).draw_batch()
    first, second = to_pixels(batch["a"]), to_pixels(batch["a_reposed"])
    assert np.median(np.abs(measure_rotation(first) - measure_rotation(second))) > 5.0
    upright_first, upright_second = canonicalise(first, "rotation"), canonicalise(second, "rotation")
    same = np.abs(upright_first - upright_second).mean()
    assert same < 0.5 * np.abs(upright_first - np.roll(upright_second, 1, axis=0)).mean()


@pytest.mark.parametrize(("attribute", "pose", "new_pose"), [("rotation", 0.0, 25.0), ("rotation", 10.0, -30.0),
                                                              ("size", 1.0, 1.2), ("size", 1.1, 0.85)])
def test_pose_warp_moves_a_puppet_render_to_its_render_at_the_new_pose(attribute, pose, new_pose) -> None:
    puppet = puppets.load("digits")
    values = {control.name: control.default for control in puppet.controls}
    start, goal = (to_tensor(puppet.render({**values, attribute: value}, 32, seed=3)[None]) for value in (pose, new_pose))
    warped = pose_warp(start, attribute, torch.tensor([pose]), torch.tensor([new_pose]))
    assert float((warped - goal).abs().mean()) < 0.25 * float((start - goal).abs().mean())
    measured = MEASURES[attribute](to_pixels(warped))[0]
    assert measured == pytest.approx(new_pose, abs=1.5 if attribute == "rotation" else 0.03)


def test_pose_warp_keeps_an_image_at_an_unchanged_pose(images: torch.Tensor) -> None:
    poses = torch.tensor([-20.0, 35.0])
    assert torch.allclose(pose_warp(images, "rotation", poses, poses), images, atol=1e-5)


@pytest.mark.parametrize("settings", [{"real_max_rotation": -5.0}, {"w_edit_ink_height": 1.0},
                                      {"real_size_range": (1.2, 0.8)},
                                      {"real_size_range": (0.0, 1.0)},
                                      {"w_pose_equivariance": 1.0, "attribute": "thickness"},
                                      {"w_photo_pose_invariance": 1.0}])
def test_impossible_real_pose_settings_are_refused_with_the_setting_named(settings) -> None:
    with pytest.raises(TrainingError, match=next(iter(settings))):
        PuppetGANConfig(**settings)


@pytest.fixture
def colour_photos(tmp_path) -> str:
    """16 colour photos, each a different tint with noise: a user's own folder."""
    rng = np.random.default_rng(3)
    root = tmp_path / "my photos"
    root.mkdir()
    for index in range(16):
        tint = rng.integers(0, 256, 3)
        photo = np.clip(tint + rng.normal(0, 20, (40, 48, 3)), 0, 255).astype(np.uint8)
        save_image(root / f"photo{index:02d}.jpg", photo)
    return str(root)


def test_a_run_on_the_users_colour_photos_trains_previews_and_exports_without_a_table(colour_photos, tmp_path) -> None:
    config = PuppetGANConfig(puppet="face", attribute="smile", real=colour_photos, grayscale=False, width=8,
                             discriminator_width=8, batch_size=4, triplet_bank=12, eval_references=3)
    torch.manual_seed(0)
    method = PuppetGAN(config, torch.device("cpu"), seed=0)
    assert len(method.real) == 16 and method.evaluate() is None
    method.train_step(1, torch.Generator().manual_seed(0))
    preview = method.preview()
    assert preview.shape == (4 * 32, 9 * 32, 3)
    assert np.array_equal(preview[:31, 32:64], method.real_images.images[0, :31])  # the first photo heads the grid
    edits = preview[32:, 32:]
    assert np.abs(edits[..., 0].astype(int) - edits[..., 2]).max() > 0  # colour decoders, not grey
    package = load_package(method.export(tmp_path / "pkg", {"steps": 1, "seed": 0}))
    assert package.metrics["table"] == [] and "user's own photos" in package.metrics["notes"]
    assert not package.normalisation.grayscale and package.normalisation.polarity is None
    assert "my photos (16 images)" in package.provenance["data"]
    references = method._preview_references
    through_onnx = package_edit_function(package)(method.real[:4], references)
    assert np.abs(through_onnx.astype(int) - method.edit(method.real[:4], references).astype(int)).max() <= 1


def test_an_attribute_no_estimator_reads_trains_without_evaluations(tiny_config, tmp_path) -> None:
    config = dataclasses.replace(tiny_config, puppet="face", attribute="smile", attribute_range=None,
                                 w_pose_equivariance=0.0)
    method = PuppetGAN(config, torch.device("cpu"), seed=0)
    assert method.evaluate() is None
    assert method.measured_metrics()["notes"].startswith("Not measured: no estimator reads 'smile'")
    assert method.preview().shape == (4 * 32, 9 * 32, 3)
    package_dir = method.export(tmp_path / "pkg", {"steps": 0, "seed": 0})
    with pytest.raises(TrainingError, match="no estimator reads 'smile' from pixels"):
        evaluate_target(package_dir)
