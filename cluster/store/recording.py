"""Recordings: a Vizier's tables and metadata written to a directory, and loaded back for replay.

A recording is what `pxtui record DIR` writes and `pxtui run --data DIR` reads:

    DIR/manifest.json        format, version, time range, agents, host, Vizier version, tables
    DIR/<table>.arrow        one Arrow IPC file per table (e.g. http_events.arrow, kafka_events.beta.arrow)
    DIR/metadata.arrow       the metadata snapshot: one row per upid the tables mention

Arrow IPC files, because the store, the engine and the wire already speak Arrow: the schemas travel
with their field metadata (semantic types, descriptions), nothing is converted, and a file maps
back into the table store batch by batch. The manifest is JSON so that a person (or `jq`) can see
what a recording holds without Python.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from cluster.schemas import UINT128, col
from cluster.store.table_store import TableStore

FORMAT = "pxtui-recording"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
METADATA_FILE = "metadata.arrow"

#: the per-process attributes a snapshot keeps (the MetadataSource.upid_attr keys)
METADATA_ATTRS = (
    "pod_name", "pod_id", "service_name", "service_id", "namespace", "node_name", "hostname",
    "container_name", "container_id", "cmdline",
)  # fmt: skip

METADATA_SCHEMA = pa.schema(
    [col("upid", UINT128, "ST_UPID", "Unique process ID (asid, pid, start time)")]
    + [col(a, pa.string(), "ST_NONE", f"{a} of the process when the recording was made") for a in METADATA_ATTRS]
)

# Table names are Pixie's (letters, digits, '_' and '.'); anything else could escape DIR.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.]*$")


class RecordingError(Exception):
    """A directory that is not a usable recording; the message says which file and why."""


@dataclass(frozen=True)
class AgentInfo:
    agent_id: str
    asid: int
    hostname: str
    state: str = "AGENT_STATE_UNKNOWN"  # as the agent reported itself when the recording was made


@dataclass
class Manifest:
    end_time_ns: int  # the instant the snapshot was taken: replays use it as px.now()
    start_time_ns: int | None = None  # oldest time_ in any table (None when every table is empty)
    max_time_ns: int | None = None  # newest time_ in any table
    agents: list[AgentInfo] = field(default_factory=list)
    hostname: str = ""
    vizier_version: str = ""
    tables: dict[str, int] = field(default_factory=dict)  # name -> rows
    format: str = FORMAT
    version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: Path) -> Manifest:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise RecordingError(f"{where}: not JSON (line {e.lineno} column {e.colno}: {e.msg})") from e
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise RecordingError(f"{where}: not a pxtui recording manifest (format is not {FORMAT!r})")
        if doc.get("version") != FORMAT_VERSION:
            raise RecordingError(f"{where}: recording format version {doc.get('version')!r}; "
                                 f"this pxtui reads version {FORMAT_VERSION}")
        try:
            agents = [AgentInfo(str(a["agent_id"]), int(a["asid"]), str(a["hostname"]),
                                str(a.get("state", "AGENT_STATE_UNKNOWN"))) for a in doc["agents"]]
            return cls(
                end_time_ns=int(doc["end_time_ns"]),
                start_time_ns=None if doc.get("start_time_ns") is None else int(doc["start_time_ns"]),
                max_time_ns=None if doc.get("max_time_ns") is None else int(doc["max_time_ns"]),
                agents=agents,
                hostname=str(doc.get("hostname", "")),
                vizier_version=str(doc.get("vizier_version", "")),
                tables={str(k): int(v) for k, v in doc.get("tables", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as e:
            raise RecordingError(f"{where}: malformed manifest ({type(e).__name__}: {e})") from e


def table_file(name: str) -> str:
    if not _SAFE_NAME.match(name) or name == "metadata":
        raise RecordingError(f"cannot record a table named {name!r}: not a table name")
    return f"{name}.arrow"


# ---- metadata snapshot -------------------------------------------------------------------------
class UpidMetadata(Protocol):
    """What a snapshot needs of a metadata source (cluster.pxl.sources.MetadataSource)."""

    def upid_attr(self, attr: str, upids: pa.Array) -> pa.Array: ...


def metadata_snapshot(source: UpidMetadata, upids: Iterable[pa.Array]) -> pa.Table:
    """One row per distinct upid, with every attribute the source gives for it now.

    Taken at record time because processes exit: a replay a week later must still say which pod
    a row came from, and there is no agent left to ask.
    """
    parts = [u for u in upids if len(u)]
    if not parts:
        return METADATA_SCHEMA.empty_table()
    distinct = pc.unique(pa.concat_arrays([p.cast(UINT128) for p in parts]))
    distinct = distinct.filter(pc.is_valid(distinct))
    cols: list[pa.Array] = [distinct]
    for attr in METADATA_ATTRS:
        values = source.upid_attr(attr, distinct)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        cols.append(pc.fill_null(values.cast(pa.string()), ""))
    return pa.Table.from_arrays(cols, schema=METADATA_SCHEMA)


# ---- writing -----------------------------------------------------------------------------------
class RecordingWriter:
    """Writes a recording as parts arrive (one agent's table at a time), so a large table is never
    held whole in memory. Several agents' parts of one table go into the same file."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        if self.dir.exists() and any(self.dir.iterdir()):
            raise RecordingError(f"{self.dir}: directory is not empty; record into a new directory")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._writers: dict[str, tuple[pa.ipc.RecordBatchFileWriter, pa.Schema]] = {}
        self._rows: dict[str, int] = {}
        self._tmin: int | None = None
        self._tmax: int | None = None
        self._metadata: list[pa.Table] = []

    def add(self, name: str, table: pa.Table) -> None:
        if name not in self._writers:
            w = pa.ipc.new_file(self.dir / table_file(name), table.schema)
            self._writers[name] = (w, table.schema)
            self._rows[name] = 0
        writer, schema = self._writers[name]
        if table.schema.names != schema.names:
            raise RecordingError(f"table {name}: agents disagree on its columns "
                                 f"({table.schema.names} vs {schema.names})")
        if not table.schema.equals(schema, check_metadata=True):
            table = pa.Table.from_arrays([c.cast(f.type) for c, f in zip(table.columns, schema, strict=True)],
                                         schema=schema)
        if table.num_rows:
            writer.write_table(table)
            self._rows[name] += table.num_rows
            if "time_" in schema.names:
                mm = pc.min_max(table.column("time_").cast(pa.int64()))
                lo, hi = mm["min"].as_py(), mm["max"].as_py()
                self._tmin = lo if self._tmin is None else min(self._tmin, lo)
                self._tmax = hi if self._tmax is None else max(self._tmax, hi)

    def add_metadata(self, table: pa.Table) -> None:
        self._metadata.append(table.select(METADATA_SCHEMA.names).cast(METADATA_SCHEMA))

    def close(self, end_time_ns: int, agents: Sequence[AgentInfo], vizier_version: str = "") -> Manifest:
        for writer, _ in self._writers.values():
            writer.close()
        md = pa.concat_tables(self._metadata) if self._metadata else METADATA_SCHEMA.empty_table()
        with pa.ipc.new_file(self.dir / METADATA_FILE, METADATA_SCHEMA) as w:
            w.write_table(md)
        manifest = Manifest(
            end_time_ns=end_time_ns,
            start_time_ns=self._tmin,
            max_time_ns=self._tmax,
            agents=list(agents),
            hostname=agents[0].hostname if agents else "",
            vizier_version=vizier_version,
            tables=dict(sorted(self._rows.items())),
        )
        (self.dir / MANIFEST).write_text(manifest.to_json() + "\n")
        return manifest


def write_recording(directory: str | Path, tables: Mapping[str, pa.Table], metadata: pa.Table,
                    end_time_ns: int, agents: Sequence[AgentInfo], vizier_version: str = "") -> Manifest:
    """A whole recording in one call (tests and generated data)."""
    w = RecordingWriter(directory)
    for name, t in tables.items():
        w.add(name, t)
    w.add_metadata(metadata)
    return w.close(end_time_ns, agents, vizier_version)


# ---- loading -----------------------------------------------------------------------------------
@dataclass
class Recording:
    manifest: Manifest
    store: TableStore
    metadata: pa.Table
    path: Path


def _read_ipc(path: Path) -> pa.Table:
    try:
        with pa.memory_map(str(path)) as src:
            return pa.ipc.open_file(src).read_all()
    except (OSError, pa.ArrowInvalid) as e:
        raise RecordingError(f"{path}: cannot read as an Arrow IPC file: {e}") from e


#: rows per batch a replayed table is stored in: like a live agent's, small enough that a head(n)
#: stops after a batch or two instead of filtering and mapping a whole recorded table
REPLAY_BATCH_ROWS = 65_536


def load_recording(directory: str | Path) -> Recording:
    """A TableStore holding every recorded table (uncapped: a recording is never evicted from),
    plus the manifest and the metadata snapshot."""
    d = Path(directory)
    mpath = d / MANIFEST
    if not d.is_dir():
        raise RecordingError(f"{d}: no such directory (make one with `pxtui record {d}`)")
    if not mpath.exists():
        raise RecordingError(f"{d}: no {MANIFEST}, so not a recording (make one with `pxtui record DIR`)")
    manifest = Manifest.from_json(mpath.read_text(), mpath)
    store = TableStore(default_max_bytes=1 << 62)
    for name in manifest.tables:
        path = d / table_file(name)
        if not path.exists():
            raise RecordingError(f"{path}: missing, but {mpath} lists table {name!r}")
        table = _read_ipc(path)
        store.create(name, table.schema)
        for batch in table.to_batches(max_chunksize=REPLAY_BATCH_ROWS):
            store.append(name, batch)
    mdpath = d / METADATA_FILE
    metadata = _read_ipc(mdpath) if mdpath.exists() else METADATA_SCHEMA.empty_table()
    missing = [n for n in METADATA_SCHEMA.names if n not in metadata.column_names]
    if missing:
        raise RecordingError(f"{mdpath}: metadata snapshot lacks column(s) {', '.join(missing)}")
    return Recording(manifest, store, metadata.select(METADATA_SCHEMA.names), d)
