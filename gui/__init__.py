"""Puppetry's desktop GUI (PySide6): views and interaction only; engine does the work."""
