"""A run's results table on disk: ``results.csv`` read back, merged with new rows, and written
with its ``results.md`` atomically, so that re-evaluating one model keeps the others' rows and a
failed evaluation never leaves an empty or half-written table."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from ..config import ConfigError
from ..files import atomic_write

RESULTS_CSV, RESULTS_MD = "results.csv", "results.md"
# Rows measured under different values of these cannot share one table.
PROTOCOL_KEYS = ("protocol", "distance_name", "card_key")


class ResultsNotWrittenError(OSError):
    """The results could not be written; ``rows`` holds them, so nothing evaluated is lost."""

    def __init__(self, message: str, rows: list):
        super().__init__(message)
        self.rows = rows


def _value(text: str):
    """A CSV cell back as the bool, int, float, list of numbers (an N-curve) or string it was
    written from."""
    if text in ("True", "False"):
        return text == "True"
    if text.startswith("[") and text.endswith("]"):
        return [_value(item.strip()) for item in text[1:-1].split(",") if item.strip()]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_results(path: str | os.PathLike) -> list:
    """The rows of a ``results.csv`` (none if there is no file); an empty cell is a column that
    row did not have."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames is None or "model" not in reader.fieldnames:
            raise ConfigError(f"{path} is not a results table (no 'model' column); move it away "
                              f"or pass results_dir= another folder")
        return [{key: _value(text) for key, text in row.items() if text not in ("", None)}
                for row in reader]


def _key(row: dict) -> tuple:
    return row.get("seed"), row["model"]


def _protocol(row: dict) -> tuple:
    return tuple(row.get(key) for key in PROTOCOL_KEYS) + ("seed" in row,)


def merge_results(existing: list, rows: list, source: str | os.PathLike = RESULTS_CSV) -> list:
    """``existing`` with each (seed, model) of ``rows`` replaced in place and the new ones
    appended. Kept rows measured under another protocol (or with seeds where ``rows`` have
    none) are a ConfigError: one table holds one protocol."""
    new = {_key(row): row for row in rows}
    kept = [row for row in existing if _key(row) not in new]
    protocol = _protocol(rows[0])
    other = [row for row in kept if _protocol(row) != protocol]
    if other:
        names = ", ".join(dict.fromkeys(str(row["model"]) for row in other))
        raise ConfigError(f"{source} holds rows for {names} from another protocol "
                          f"({other[0].get('protocol')!r}) than the new rows "
                          f"({rows[0].get('protocol')!r}); pass results_dir= another folder, "
                          f"or evaluate those models with this protocol too")
    merged = [new.pop(_key(row), row) for row in existing]
    return merged + list(new.values())


def write_results_files(rows: list, markdown: str, folder: str | os.PathLike) -> tuple:
    """Write ``rows`` (every column) as ``folder/results.csv`` and ``markdown`` as
    ``results.md``, each atomically; return both paths."""
    folder = Path(folder)
    csv_path, md_path = folder / RESULTS_CSV, folder / RESULTS_MD
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(csv_path, lambda file: file.write(table.getvalue().encode("utf-8")))
        atomic_write(md_path, lambda file: file.write(markdown.encode("utf-8")))
    except OSError as error:
        raise ResultsNotWrittenError(f"could not write the results into {folder} "
                                     f"({error.strerror or error}); the rows are in this "
                                     f"error's .rows; free space or pass results_dir= another "
                                     f"folder", rows) from error
    return csv_path, md_path
