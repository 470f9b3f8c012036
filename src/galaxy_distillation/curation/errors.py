"""Exception classes of the curation package.

Every error carries a one-line, human-readable message that names the problem
(file, column, class, count), so a pipeline can print it without a traceback.
All of them derive from :class:`CurationError`; a few also derive from the
matching built-in (``ValueError``, ``FileNotFoundError``) so generic handlers
keep working.
"""

from __future__ import annotations


class CurationError(Exception):
    """Base class of all curation errors."""


class ParameterError(CurationError, ValueError):
    """A parameter has a value outside its allowed set or range."""


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
