"""Puppetry's Qt views: main window, canvas, docks and the workers that keep the engine off the GUI thread."""
