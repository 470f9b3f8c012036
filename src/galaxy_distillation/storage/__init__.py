"""Storage: where files live, how they are written, and the local copies of remote ones.

Every path may be a local path or any fsspec URL (``s3://bucket/prefix``, ``gs://...``,
``file:///...``). One home per concept:

- :mod:`.location`: the URL helpers and the one location type, :class:`Location` (URL,
  credentials, fsspec filesystem; atomic writes; picklable);
- :mod:`.atomic`: the one atomic-write helper every file the project writes itself goes
  through (temporary file, fsync, rename; the real ``OSError`` on failure);
- :mod:`.mirror`: the one local cache (:func:`cache_folder`) and the one mirror of remote
  files (:func:`mirror_files`: validated by ETag/checksum, downloads renamed into place);
- :mod:`.filestore`: one file outside the catalog (:class:`FileStore`, the distillation
  checkpoint store) and :func:`checkpoint_location`;
- :mod:`.shelf`: the expert banks of an expert folder (``ExpertShelf``); import it from
  :mod:`galaxy_distillation.storage.shelf` (not re-exported here: it builds on the engine,
  which imports :mod:`.atomic`).

No Kedro here; the Kedro datasets built on this are in :mod:`galaxy_distillation.datasets`.
"""

from galaxy_distillation.storage.atomic import atomic_path, atomic_write, move_aside, os_error_of, write_bytes, write_text
from galaxy_distillation.storage.filestore import FileStore, checkpoint_location
from galaxy_distillation.storage.location import (
    ROOT_TOKEN,
    Location,
    exists,
    filesystem,
    inside,
    is_local,
    join,
    local_path,
    rooted,
    sibling,
    split,
)
from galaxy_distillation.storage.mirror import cache_folder, content_tag, mirror_files

__all__ = ["ROOT_TOKEN", "FileStore", "Location", "atomic_path", "atomic_write", "cache_folder", "checkpoint_location",
           "content_tag", "exists", "filesystem", "inside", "is_local", "join", "local_path", "mirror_files",
           "move_aside", "os_error_of", "rooted", "sibling", "split", "write_bytes", "write_text"]
