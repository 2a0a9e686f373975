"""Puppetry's engine: applies trained models to photos. No Qt, no torch."""
