"""Checks before any node runs: everything the parameters and the file system alone decide.

:class:`~.hook.ClusterHook`, before the first node (one line, exit 2 or 1, on failure), runs
:func:`~.checks.check_run` (the experts' epochs against every distillation's start epochs, presets
resolved per cell; the Ray cluster ``compute.address`` names found and reachable, without
connecting (``auto`` included); a local ``storage_root`` or ``distill.checkpoint_root`` with a remote Ray
cluster; an ``image_size`` that would do nothing; input files that must exist; a writable folder
for every local output and checkpoint), then :func:`~.credentials.check_storage` (an object-store
root that cannot be used: no filesystem package, no credentials, endpoint or bucket unreachable),
then connects to Ray when ``compute.backend`` is ``ray`` and the pipeline submits tasks (stopped
at the end when started here). When the context is created it exports a ``storage`` entry of
``credentials.yml`` as the ``AWS_*`` variables (catalog, driver and Ray tasks share them) and
names a credentials file that cannot be read. ``--params`` values no stage reads are refused
earlier, with the parameter validation (:func:`galaxy_distillation.hooks.refuse_ignored`).

Modules: :mod:`.credentials` (credentials and the object-store root), :mod:`.checks` (what the
parameters and the file system decide, :func:`~.checks.check_run`), :mod:`.hook` (the Kedro hook).
"""
