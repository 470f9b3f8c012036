"""Exception classes of the curation package.

Every error carries a one-line, human-readable message that names the problem
(file, column, class, count), so a pipeline can print it without a traceback.
All of them are :class:`galaxy_distillation.errors.UserError`; all but
:class:`ParameterError` (the project-wide one) derive from :class:`CurationError`; a few also derive from the
matching built-in (``ValueError``, ``FileNotFoundError``) so generic handlers
keep working.
"""

from __future__ import annotations

from galaxy_distillation.errors import ParameterError, UserError

__all__ = [
    "CurationError", "ParameterError", "CatalogueNotFoundError", "CatalogueFormatError", "EmptyDatasetError",
    "ShortfallError", "MissingImagesError", "UnreadableImageError", "DownloadError",
]


class CurationError(UserError):
    """Base class of all curation errors (``ParameterError`` is the project-wide one)."""


class CatalogueNotFoundError(CurationError, FileNotFoundError):
    """A catalogue or mapping file does not exist."""


class CatalogueFormatError(CurationError):
    """A table has an unsupported format or lacks required columns."""


class EmptyDatasetError(CurationError):
    """Nothing is left to work with (empty catalogue, empty selection...)."""


class ShortfallError(CurationError):
    """A class has fewer galaxies than requested (``on_shortfall='error'``)."""


class MissingImagesError(CurationError):
    """Too many selected galaxies have no image file."""


class UnreadableImageError(CurationError):
    """An image file exists but cannot be decoded."""


class DownloadError(CurationError):
    """A download failed or produced a file of the wrong size."""
