"""A toy Method for the loop and export tests: a tiny conv autoencoder on fixed random images.

It touches every random stream the loop must carry across a resume: the
loop's data generator (batch indices), the global torch RNG (dropout) and a
numpy generator of its own kept in `state()` (input noise).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from trainer.export import Graph, export_package
from trainer.methods import Method, MethodConfig


@dataclass(frozen=True)
class ToyConfig(MethodConfig):
    lr: float = 1e-2
    batch_size: int = 8
    images: int = 64
    size: int = 8
    noise_std: float = 0.05
    export_onnx: bool = False  # the loop tests skip the ONNX exporter (seconds per graph); test_export uses it


class ToyAutoencoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Dropout(0.1))
        self.decoder = nn.Sequential(nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1), nn.Tanh())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(image))


class ToyMethod(Method):
    name = "toy"
    config_class = ToyConfig

    def __init__(self, config: ToyConfig, device: torch.device, seed: int) -> None:
        super().__init__(config, device, seed)
        half = config.size // 2
        coarse = np.random.default_rng(1234).uniform(-1, 1, (config.images, 3, half, half))
        smooth = np.repeat(np.repeat(coarse, 2, axis=2), 2, axis=3)  # (N, 3, S, S): 2x2 blocks an autoencoder can learn
        self.images = torch.from_numpy(smooth).float().to(device)
        self.net = ToyAutoencoder().to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.noise = np.random.default_rng(seed)

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.optimizer}

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        indices = torch.randint(0, self.config.images, (self.config.batch_size,), generator=generator)
        batch = self.images[indices.to(self.device)]
        noise = torch.from_numpy(self.noise.normal(0, self.config.noise_std, batch.shape)).float().to(self.device)
        loss = F.mse_loss(self.net(batch + noise), batch)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"reconstruction": loss.item()}

    def preview(self) -> np.ndarray:
        self.net.eval()
        with torch.no_grad():
            output = self.net(self.images[:4])
        self.net.train()
        tiles = torch.cat([self.images[:4], output], dim=3)  # (4, 3, S, 2S)
        grid = torch.cat(list(tiles), dim=1).permute(1, 2, 0)  # (4S, 2S, 3)
        return ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()

    def evaluate(self) -> dict[str, float]:
        self.net.eval()
        with torch.no_grad():
            error = F.mse_loss(self.net(self.images), self.images).item()
        self.net.train()
        return {"mse": error}

    def export(self, out_dir: Path, provenance: Mapping[str, Any]) -> Path:
        fields = {"name": "toy", "title": "Toy", "method": "toy", "editor": "puppet", "image_size": self.config.size,
                  "channels": 3, "provenance": {**provenance, "data": "random"}}
        if not self.config.export_onnx:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "manifest.json").write_text(json.dumps(fields))
            return out_dir
        graph = Graph(self.net, (self.images[:2],), input_names=["image"], output_names=["reconstruction"])
        return export_package(out_dir, fields, {"autoencoder": graph})

    def state(self) -> dict[str, Any]:
        return {"noise": self.noise.bit_generator.state}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.noise.bit_generator.state = state["noise"]
