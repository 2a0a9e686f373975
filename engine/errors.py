"""The one error hierarchy: every failure a user can act on is a PuppetryError."""


class PuppetryError(Exception):
    """Base of every error Puppetry raises on purpose; its message is for a person."""


class ImageError(PuppetryError):
    """A photo could not be read or written; the message names the file and the reason."""


class PackageError(PuppetryError):
    """A model package is missing, malformed or refused."""


class EditError(PuppetryError):
    """An edit could not be applied (bad control value, wrong guide, region outside the photo)."""


class TrainingError(PuppetryError):
    """A training run could not start, resume or export."""
