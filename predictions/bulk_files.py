"""Bulk job files: inputs split into chunk files, chunks read back as rows, results written
and streamed. Pure pandas/pyarrow, no Django: the services in predictions/bulk.py decide
where the bytes are stored.

An input is read once, as a stream, by the process that receives it: CSV through pyarrow's
streaming reader (every feature column as text, converted by the workers chunk by chunk, so
that one bad cell is one bad row, not an unreadable file), Parquet by record batches. Each
chunk becomes a small Parquet file (JSON rows: a JSON file) that a worker reads on its own.
Memory stays bounded by one chunk, whatever the size of the input.
"""

from __future__ import annotations

import io
import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from predictions.catalog.base import CatalogModel, Feature
from predictions.datasets import FileFormatError, check_header

# The optional input column with the caller's id for each row; it is kept in history.
ENTITY_COLUMN = "entity_id"
ENTITY_MAX_LENGTH = 120  # history.PredictionRecord.entity_id
# CSV reader block. pyarrow's streaming reader holds several blocks ahead, so this sets the
# receiving web worker's peak: splitting 1,000,000 rows (97 MB) took +150 MB at 4 MB blocks,
# +88 MB at 1 MB, in the same ~1 s (bench/README.md, "Bulk prediction jobs").
CSV_BLOCK_BYTES = 1024 * 1024
# A file with more lines the reader cannot split than this is not the CSV it claims to be.
MAX_MALFORMED_LINES = 1_000
# Rows read to decide that a column holds the wrong type altogether (a 400 before any work).
TYPE_SAMPLE_ROWS = 10_000
# Results: rows per record batch when a CSV download is rendered from a Parquet part.
_ARROW_TYPES = {"number": pa.float64(), "integer": pa.int64(), "boolean": pa.bool_()}
_BOOLEAN_TEXT = {"true": True, "false": False, "1": True, "0": False}
_COPY_BLOCK_BYTES = 256 * 1024

# (chunk index, first row's position, row count, the chunk file's bytes, file suffix) -> path
ChunkSink = Callable[[int, int, int, bytes, str], str]


class BulkInputError(FileFormatError):
    """The input cannot be used at all: unreadable, wrong header, wrong column type, empty."""


@dataclass
class ChunkFile:
    index: int
    row_start: int
    row_count: int
    path: str


@dataclass
class InputSplit:
    """What splitting an input produced: its chunks and the lines that were not rows."""

    chunks: list[ChunkFile] = field(default_factory=list)
    rows: int = 0
    malformed: list[dict[str, Any]] = field(default_factory=list)  # {"line", "errors"}

    @property
    def skipped_lines(self) -> list[int]:
        return [entry["line"] for entry in self.malformed]


class _Chunker:
    """Collects record batches and hands out exactly ``chunk_rows`` rows at a time."""

    def __init__(self, *, chunk_rows: int, max_rows: int, sink: ChunkSink, split: InputSplit):
        self.chunk_rows, self.max_rows, self.sink, self.split = chunk_rows, max_rows, sink, split
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        if self.split.rows + self.pending_rows + batch.num_rows > self.max_rows:
            raise BulkInputError(f"The input has more than {self.max_rows:,} rows; split it into several jobs.")
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        while self.pending_rows >= self.chunk_rows:
            self._emit(self.chunk_rows)

    def finish(self) -> None:
        if self.pending_rows:
            self._emit(self.pending_rows)

    def _emit(self, rows: int) -> None:
        table = pa.Table.from_batches(self.pending)
        chunk, rest = table.slice(0, rows), table.slice(rows)
        self.pending = rest.combine_chunks().to_batches() if rest.num_rows else []
        self.pending_rows = rest.num_rows
        index = len(self.split.chunks)
        path = self.sink(index, self.split.rows, rows, table_bytes(chunk), "parquet")
        self.split.chunks.append(ChunkFile(index, self.split.rows, rows, path))
        self.split.rows += rows


def table_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    # Uncompressed: chunk files live for days at most, and workers read them at memory speed.
    pq.write_table(table, buffer, compression="none")
    return buffer.getvalue()


def _check_columns(spec: CatalogModel, names: list[str], *, with_target: bool) -> list[str]:
    """The header check shared with dataset uploads, plus the optional entity id column."""
    if any(not name.strip() for name in names):
        raise BulkInputError("Bad header: a column has no name; the first line must name the columns.")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BulkInputError(f"Bad header: duplicate column(s): {', '.join(duplicates[:20])}.")
    try:
        check_header(spec, [n for n in names if n != ENTITY_COLUMN], with_target=with_target)
    except FileFormatError as exc:
        raise BulkInputError(str(exc)) from None
    return [n for n in names if n in set(spec.feature_names()) or n == ENTITY_COLUMN]


# --- CSV ----------------------------------------------------------------------------------------


def split_csv(
    source: IO[bytes], *, spec: CatalogModel, chunk_rows: int, max_rows: int, sink: ChunkSink, with_target: bool
) -> InputSplit:
    """Stream a CSV into chunk files of text columns; malformed lines are reported, not rows.

    Line numbers are physical lines: blank lines are rows (of missing values, so they are
    reported), and a line with the wrong number of fields is skipped and reported. Line breaks
    inside quoted values would shift the numbers of later lines; no feature value has one.
    """
    split = InputSplit()

    def on_invalid_row(row) -> str:
        split.malformed.append(
            {
                "line": row.number,
                "errors": {"non_field_errors": f"Expected {row.expected_columns} fields, found {row.actual_columns}."},
            }
        )
        return "skip" if len(split.malformed) <= MAX_MALFORMED_LINES else "error"

    text_columns = [*spec.feature_names(), ENTITY_COLUMN]
    if spec.target is not None:
        text_columns.append(spec.target.name)
    try:
        reader = pacsv.open_csv(
            source,
            # One thread: the reader then knows each malformed line's number.
            read_options=pacsv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid_row, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in text_columns}, strings_can_be_null=True
            ),
        )
        names = reader.schema.names
    except (pa.ArrowException, UnicodeDecodeError, OSError) as exc:
        raise BulkInputError(f"The file cannot be read as CSV: {_arrow_message(exc)}") from None
    keep = _check_columns(spec, names, with_target=with_target)
    chunker = _Chunker(chunk_rows=chunk_rows, max_rows=max_rows, sink=sink, split=split)
    checked_types = False
    try:
        for batch in reader:
            batch = batch.select(keep)
            if not checked_types:
                _check_text_types(spec, batch)
                checked_types = True
            chunker.add(batch)
    except pa.ArrowException as exc:
        if len(split.malformed) > MAX_MALFORMED_LINES:
            raise BulkInputError(
                f"More than {MAX_MALFORMED_LINES} lines do not have the header's number of fields "
                f"(the first at line {split.malformed[0]['line']}); is this the right file?"
            ) from None
        raise BulkInputError(f"The file cannot be read as CSV: {_arrow_message(exc)}") from None
    chunker.finish()
    split.malformed.sort(key=lambda entry: entry["line"])
    return split


def _check_text_types(spec: CatalogModel, batch: pa.RecordBatch) -> None:
    """A 400 up front for a column none of whose first values has the feature's type.

    Single bad cells are not the file's fault: they become bad rows in the error report.
    """
    sample = batch.slice(0, TYPE_SAMPLE_ROWS)
    for feature in spec.features:
        if feature.kind == "category" or feature.name not in sample.schema.names:
            continue
        text = pc.utf8_trim_whitespace(sample.column(feature.name)).to_pandas().dropna()
        text = text[text != ""]
        if text.empty:
            continue
        if feature.kind == "boolean":
            usable = text.str.lower().isin(list(_BOOLEAN_TEXT)).any()
        else:
            usable = pd.to_numeric(text, errors="coerce").notna().any()
        if not usable:
            raise BulkInputError(
                f"Column '{feature.name}' holds no {_kind_words(feature)} (first value {str(text.iloc[0])[:40]!r})."
            )


def _kind_words(feature: Feature) -> str:
    return {"number": "number", "integer": "whole number", "boolean": "true/false value"}.get(feature.kind, "text")


def _arrow_message(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


# --- Parquet ------------------------------------------------------------------------------------


def split_parquet(
    source: IO[bytes], *, spec: CatalogModel, chunk_rows: int, max_rows: int, sink: ChunkSink, with_target: bool
) -> InputSplit:
    """Read a Parquet file by record batches into chunk files of its own (checked) types."""
    try:
        parquet = pq.ParquetFile(source)
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise BulkInputError(f"The file cannot be read as Parquet: {_arrow_message(exc)}") from None
    keep = _check_columns(spec, schema.names, with_target=with_target)
    features = {f.name: f for f in spec.features}
    for name in keep:
        if name in features and not _arrow_type_fits(schema.field(name).type, features[name]):
            raise BulkInputError(
                f"Column '{name}' has type {schema.field(name).type}; the feature is a {_kind_words(features[name])}."
            )
    split = InputSplit()
    chunker = _Chunker(chunk_rows=chunk_rows, max_rows=max_rows, sink=sink, split=split)
    try:
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=keep):
            chunker.add(batch)
    except (pa.ArrowException, OSError) as exc:
        raise BulkInputError(f"The file cannot be read as Parquet: {_arrow_message(exc)}") from None
    chunker.finish()
    return split


def _arrow_type_fits(arrow_type: pa.DataType, feature: Feature) -> bool:
    if pa.types.is_null(arrow_type):
        return True  # every value missing: the rows say so, one by one
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    numeric = pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type)
    if feature.kind in ("number", "integer"):
        return numeric
    if feature.kind == "boolean":
        return pa.types.is_boolean(arrow_type) or pa.types.is_integer(arrow_type)
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


# --- JSON rows ----------------------------------------------------------------------------------


def split_json_rows(rows: list[dict[str, Any]], *, chunk_rows: int, sink: ChunkSink) -> InputSplit:
    """Rows already checked as ``{"features": {...}, "entity_id": "..."}``, in JSON chunk files."""
    split = InputSplit()
    for index, start in enumerate(range(0, len(rows), chunk_rows)):
        part = rows[start : start + chunk_rows]
        path = sink(index, start, len(part), orjson.dumps(part), "json")
        split.chunks.append(ChunkFile(index, start, len(part), path))
    split.rows = len(rows)
    return split


# --- A chunk read back as rows ------------------------------------------------------------------


@dataclass
class ChunkRows:
    """A chunk's rows as the validator expects them, and the rows refused before it."""

    rows: list[Any]
    entity_ids: list[str]
    positions: list[int]  # position in the chunk of each row above
    refused: dict[int, dict[str, str]]  # position -> errors (entity ids the history cannot keep)
    size: int


def read_chunk(data: bytes, *, spec: CatalogModel, suffix: str) -> ChunkRows:
    if suffix == "json":
        envelopes = orjson.loads(data)
        return _chunk_rows(
            [item.get("features") for item in envelopes], [item.get("entity_id") or "" for item in envelopes]
        )
    table = pq.read_table(io.BytesIO(data))
    names = [f.name for f in spec.features if f.name in table.column_names]
    columns = [_column_values(table.column(name), _feature(spec, name)) for name in names]
    # dict(zip()) per row is the cheapest way to the validator's input (~1 µs a row); a
    # missing column is simply absent from every row, as if the caller had left it out.
    if names:
        rows = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
    else:
        rows = [{} for _ in range(table.num_rows)]
    if ENTITY_COLUMN not in table.column_names:
        return _chunk_rows(rows, [""] * table.num_rows, checked=True)
    entity = table.column(ENTITY_COLUMN)
    entity = (entity if pa.types.is_string(entity.type) else pc.cast(entity, pa.string())).fill_null("")
    # The common case, checked at C speed: short printable ASCII ids need no look one by one.
    plain = pc.all(pc.match_substring_regex(entity, f"^[ -~]{{0,{ENTITY_MAX_LENGTH}}}$")).as_py() is not False
    return _chunk_rows(rows, entity.to_pylist(), checked=plain)


def _feature(spec: CatalogModel, name: str) -> Feature:
    return next(f for f in spec.features if f.name == name)


def _chunk_rows(rows: list[Any], entity_ids: list[Any], *, checked: bool = False) -> ChunkRows:
    if checked:
        return ChunkRows(rows, entity_ids, list(range(len(rows))), {}, len(rows))
    kept_rows, kept_ids, positions, refused = [], [], [], {}
    for position, (row, entity_id) in enumerate(zip(rows, entity_ids, strict=True)):
        if not isinstance(entity_id, str) or len(entity_id) > ENTITY_MAX_LENGTH or not entity_id.isprintable():
            refused[position] = {ENTITY_COLUMN: f"Must be printable text of at most {ENTITY_MAX_LENGTH} characters."}
            continue
        kept_rows.append(row)
        kept_ids.append(entity_id)
        positions.append(position)
    return ChunkRows(kept_rows, kept_ids, positions, refused, len(rows))


def _column_values(column: pa.ChunkedArray, feature: Feature) -> list[Any]:
    """A column as Python values: typed where it parses, the original text where it does not
    (so that the validator words the error), None where the cell is empty."""
    arrow_type = column.type
    if pa.types.is_dictionary(arrow_type):
        column = column.cast(arrow_type.value_type)
        arrow_type = column.type
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        trimmed = pc.utf8_trim_whitespace(column)
        if feature.kind == "category":
            return trimmed.to_pylist()
        try:  # the common case: every cell parses, at C speed
            return pc.cast(trimmed, _ARROW_TYPES[feature.kind]).to_pylist()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return [_parse_text(value, feature.kind) for value in trimmed.to_pylist()]
    values = column.to_pylist()
    if pa.types.is_floating(arrow_type):
        return [None if value is not None and math.isnan(value) else value for value in values]
    if pa.types.is_decimal(arrow_type):
        return [None if value is None else float(value) for value in values]
    if feature.kind == "boolean" and pa.types.is_integer(arrow_type):
        return [bool(value) if value in (0, 1) else value for value in values]
    return values


def _parse_text(value: str | None, kind: str) -> Any:
    if value is None or value == "":
        return None
    if kind == "boolean":
        return _BOOLEAN_TEXT.get(value.lower(), value)
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def csv_line(index: int, skipped_lines: list[int]) -> int:
    """The physical line of data row ``index`` (from 0): line 1 is the header, and the
    malformed lines that were skipped still count."""
    line = 2 + index
    while True:
        candidate = 2 + index + bisect_right(skipped_lines, line)
        if candidate == line:
            return line
        line = candidate


# --- Results ------------------------------------------------------------------------------------


def result_part(
    *,
    output_format: str,
    indexes: list[int],
    entity_ids: list[str],
    prediction_ids: list[int],
    outputs: list[dict[str, Any]],
) -> tuple[bytes, str]:
    """One chunk's results: JSON lines as they will be served, else a Parquet part whose
    nested answers are JSON text (CSV and Parquet downloads are rendered from it)."""
    if output_format == "jsonl":
        lines = [
            orjson.dumps(
                {"index": index, "entity_id": entity_id, "prediction_id": pid, "prediction": output},
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for index, entity_id, pid, output in zip(indexes, entity_ids, prediction_ids, outputs, strict=True)
        ]
        return b"".join(lines), "jsonl"
    columns: dict[str, pa.Array] = {
        "index": pa.array(indexes, type=pa.int64()),
        "entity_id": pa.array(entity_ids, type=pa.string()),
        "prediction_id": pa.array(prediction_ids, type=pa.int64()),
    }
    keys = dict.fromkeys(key for output in outputs for key in output)
    for key in keys:
        columns[key] = _output_column([output.get(key) for output in outputs])
    return table_bytes(pa.table(columns)), "parquet"


def _output_column(values: list[Any]) -> pa.Array:
    if all(value is None or isinstance(value, (bool, int, float, str)) for value in values):
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # mixed scalar types: as text below
    return pa.array(
        [
            None if value is None else value if isinstance(value, str) else orjson.dumps(value).decode()
            for value in values
        ],
        type=pa.string(),
    )


def error_lines(entries: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE) for entry in entries)


# --- Downloads ----------------------------------------------------------------------------------

Opener = Callable[[], IO[bytes]]


def stream_bytes(openers: Iterable[Opener]) -> Iterator[bytes]:
    """Files one after the other, in blocks: JSON lines results and error reports."""
    for open_part in openers:
        with open_part() as handle:
            while block := handle.read(_COPY_BLOCK_BYTES):
                yield block


def stream_table(openers: list[Opener], *, output_format: str) -> Iterator[bytes]:
    """Parquet parts as one CSV or one Parquet file, a part at a time.

    Parts may disagree on a column's type (a column that is all integers in one chunk and has
    a fraction in another), so every part is cast to the schema that fits them all.
    """
    if not openers:
        return
    schemas = []
    for open_part in openers:
        with open_part() as handle:
            schemas.append(pq.read_schema(handle))
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    if output_format == "csv":
        for position, open_part in enumerate(openers):
            table = _read_as(open_part, schema)
            buffer = io.BytesIO()
            pacsv.write_csv(table, buffer, write_options=pacsv.WriteOptions(include_header=position == 0))
            yield buffer.getvalue()
        return
    sink = _DrainableSink()
    with pq.ParquetWriter(sink, schema) as writer:
        for open_part in openers:
            writer.write_table(_read_as(open_part, schema))
            yield sink.drain()
    yield sink.drain()  # the footer, written on close


def _read_as(open_part: Opener, schema: pa.Schema) -> pa.Table:
    with open_part() as handle:
        table = pq.read_table(handle)
    missing = [name for name in schema.names if name not in table.column_names]
    for name in missing:
        table = table.append_column(schema.field(name), pa.nulls(table.num_rows, schema.field(name).type))
    return table.select(schema.names).cast(schema)


class _DrainableSink(io.RawIOBase):
    """A write-only file whose bytes are handed out as they are written (streaming Parquet)."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = bytearray()
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._buffer += data
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        data, self._buffer = bytes(self._buffer), bytearray()
        return data
