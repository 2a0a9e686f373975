"""Puppetry's trainer (PyTorch): fits domain pairs and exports model packages."""
