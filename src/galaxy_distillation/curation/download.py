"""Resumable HTTP(S) download of the public Galaxy Zoo 2 files (standard library only)."""

from __future__ import annotations

import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from .errors import DownloadError, ParameterError

#: Hart et al. 2016 table 1 (gz2_hart16.csv.gz), about 240k galaxies.
HART16_URL: str = "https://gz2hart.s3.amazonaws.com/gz2_hart16.csv.gz"
#: Zenodo record 3565489: the 243,434 JPEG cutouts (about 3.4 GB).
ZENODO_IMAGES_URL: str = "https://zenodo.org/records/3565489/files/images_gz2.zip"
#: Zenodo record 3565489: objid -> asset_id mapping (objid,sample,asset_id).
ZENODO_MAPPING_URL: str = "https://zenodo.org/records/3565489/files/gz2_filename_mapping.csv"

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _open(url: str, start: int, timeout: float):
    """Open ``url``, asking for bytes ``start-`` when ``start > 0``."""
    req = urllib.request.Request(url, headers={"User-Agent": "galaxy-distillation/0.1"})
    if start > 0:
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=timeout)


def download(
    url: str,
    dest: str | Path,
    expected_size: int | None = None,
    chunk: int = 1 << 20,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Stream ``url`` to ``dest``, resuming a previous partial download.

    Data go to ``dest + ".part"``; if that file exists, an HTTP ``Range`` request
    asks for the rest. A server that ignores Range (status 200) makes the
    download restart from zero; 416 (range not satisfiable) also restarts unless
    the partial file already has ``expected_size`` bytes. The final size is
    checked against ``expected_size`` and the server's length; then the file is
    renamed atomically to ``dest``. An existing ``dest`` of the expected size (or
    any size when ``expected_size`` is None) is returned untouched.

    Args:
        url: http(s) URL.
        dest: destination file (parent folders created).
        expected_size: exact size in bytes, if known.
        chunk: read size in bytes.
        progress: show a tqdm bar.
        timeout: socket timeout in seconds.

    Returns:
        ``dest`` as a Path.

    Raises:
        ParameterError: bad chunk / expected_size.
        DownloadError: network/HTTP failure or size mismatch (a partial file of the
            wrong size is removed when it is larger than expected).
    """
    if int(chunk) < 1:
        raise ParameterError(f"chunk must be >= 1, got {chunk}")
    if expected_size is not None and int(expected_size) < 0:
        raise ParameterError(f"expected_size must be >= 0, got {expected_size}")
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if dest.is_file() and (expected_size is None or dest.stat().st_size == expected_size):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)

    start = part.stat().st_size if part.is_file() else 0
    if expected_size is not None and start > expected_size:
        part.unlink()
        start = 0
    try:
        try:
            resp = _open(url, start, timeout)
        except urllib.error.HTTPError as exc:
            if exc.code != 416 or start == 0:
                raise
            if expected_size is not None and start == expected_size:
                os.replace(part, dest)
                return dest
            part.unlink()
            start = 0
            resp = _open(url, 0, timeout)
        with resp:
            status = getattr(resp, "status", 200)
            length = resp.headers.get("Content-Length")
            total: int | None = None
            if start > 0 and status == 206:
                match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                if match and int(match.group(1)) != start:
                    raise DownloadError(
                        f"server resumed {url} at byte {match.group(1)}, expected {start}"
                    )
                if match and match.group(3) != "*":
                    total = int(match.group(3))
                elif length is not None:
                    total = start + int(length)
                mode = "ab"
            else:  # fresh download, or the server ignored Range: restart
                start = 0
                total = int(length) if length is not None else None
                mode = "wb"
            if expected_size is not None and total is not None and total != expected_size:
                raise DownloadError(
                    f"{url}: server reports {total} bytes, expected {expected_size}"
                )
            with open(part, mode) as fh, tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                desc=dest.name,
                disable=not progress,
            ) as bar:
                while True:
                    block = resp.read(int(chunk))
                    if not block:
                        break
                    fh.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"download of {url} failed (partial data kept in {part}): {exc}") from exc

    size = part.stat().st_size
    want = expected_size if expected_size is not None else total
    if want is not None and size != want:
        if size > want:
            part.unlink()
        raise DownloadError(f"{url}: got {size} bytes, expected {want}")
    os.replace(part, dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m galaxy_distillation.curation.download DEST``: fetch the real GZ2 files.

    Downloads the Hart 2016 catalogue, the Zenodo filename mapping and the image archive into
    DEST (resuming partial files), then tells how to unzip the images.
    """
    import argparse

    parser = argparse.ArgumentParser(description="Download the real Galaxy Zoo 2 files (about 3.5 GB).")
    parser.add_argument("dest", type=Path, help="folder to download into, e.g. data/01_raw/gz2")
    parser.add_argument("--no-images", action="store_true", help="skip the 3.4 GB image archive")
    args = parser.parse_args(argv)
    urls = [HART16_URL, ZENODO_MAPPING_URL] + ([] if args.no_images else [ZENODO_IMAGES_URL])
    for url in urls:
        target = args.dest / url.rsplit("/", 1)[-1]
        try:
            download(url, target)
        except DownloadError as err:
            print(f"download failed: {err}", file=sys.stderr)
            return 1
        print(f"ok: {target}")
    if not args.no_images:
        print(f"now unzip: (cd {args.dest} && unzip -q images_gz2.zip)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
