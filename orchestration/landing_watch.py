"""Pure cursor logic for the landing sensors: which daily partitions have new or changed files.

The cursor remembers each file's (size, mtime) fingerprint. A new file or a changed one marks its day for
(re)ingestion — a late file for an older day re-runs that day; a file seen before with the same fingerprint
changes nothing. Only file names and stat() are read: sensors never open the warehouse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

DAY_FOLDER = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
DATA_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class LandingScan:
    changed_days: list[str]  # sorted partition keys with new or changed files
    new_files: list[str]  # relative paths of the files that caused them
    cursor: str  # the cursor to store after the runs are requested
    files_seen: int


def fingerprint(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def scan_landing(folder: Path, cursor: str | None, valid_days: set[str] | None = None) -> LandingScan:
    """Compare `folder/date=YYYY-MM-DD/*` with the fingerprints stored in `cursor` (JSON)."""
    seen: dict[str, str] = json.loads(cursor) if cursor else {}
    current: dict[str, str] = {}
    changed: set[str] = set()
    new_files: list[str] = []
    if folder.exists():
        for day_dir in sorted(folder.iterdir()):
            match = DAY_FOLDER.match(day_dir.name)
            if not match or not day_dir.is_dir():
                continue
            day = match.group(1)
            if valid_days is not None and day not in valid_days:
                continue
            for file in sorted(day_dir.iterdir()):
                if not file.is_file() or file.suffix.lower() not in DATA_SUFFIXES:
                    continue
                rel = f"{day_dir.name}/{file.name}"
                current[rel] = fingerprint(file)
                if seen.get(rel) != current[rel]:
                    changed.add(day)
                    new_files.append(rel)
    # Keep fingerprints of files that disappeared (archived upstream): their day's data stays loaded.
    merged = {**seen, **current}
    return LandingScan(
        changed_days=sorted(changed),
        new_files=new_files,
        cursor=json.dumps(merged, sort_keys=True),
        files_seen=len(current),
    )
