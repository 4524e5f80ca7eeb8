"""Unfinished bags (a recorder that was killed): every complete message rewritten into a readable bag.

A killed recorder leaves a bag folder without ``metadata.yaml`` and, for mcap,
without a summary section; sqlite3 keeps what the last committed transaction
held. :func:`recover_bag` streams what is complete (the ``mcap`` package's
stream reader for mcap, plain SQL for sqlite3), writes it into a new bag with
``rosbags`` and moves the originals to ``<bag>/unfinished/`` — nothing is lost.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from llara_core.datasets.bags.options import BagError, typestore

RawMessage = tuple[str, str, str | None, int, bytes]  # topic, msgtype, message definition, log time (ns), CDR


def needs_recovery(bag: Path) -> bool:
    """True for a bag folder without metadata.yaml (a recorder that never closed it)."""
    return (
        bag.is_dir() and not (bag / "metadata.yaml").is_file() and (any(bag.glob("*.mcap")) or any(bag.glob("*.db3")))
    )


def _raw_from_mcap(files: list[Path]) -> Iterable[RawMessage]:
    """Every complete message of possibly truncated mcap files."""
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    for f in files:
        schemas: dict[int, Schema] = {}
        channels: dict[int, Channel] = {}
        with f.open("rb") as fh:
            try:
                for rec in StreamReader(fh, emit_chunks=False).records:
                    if isinstance(rec, Schema):
                        schemas[rec.id] = rec
                    elif isinstance(rec, Channel):
                        channels[rec.id] = rec
                    elif isinstance(rec, Message) and rec.channel_id in channels:
                        ch = channels[rec.channel_id]
                        sc = schemas.get(ch.schema_id)
                        msgdef = sc.data.decode() if sc and sc.encoding == "ros2msg" else None
                        yield ch.topic, sc.name if sc else "", msgdef, rec.log_time, rec.data
            except (
                Exception
            ):  # the truncated tail (any parse error of the mcap package): everything before it was yielded
                return


def _raw_from_sqlite(files: list[Path]) -> Iterable[RawMessage]:
    """Every message sqlite can still read; a damaged page ends the file's stream (what came before is kept)."""
    for f in files:
        con = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
        try:
            topics = {r[0]: (r[1], r[2]) for r in con.execute("SELECT id, name, type FROM topics")}
            defs: dict[str, str] = {}
            try:
                rows = con.execute("SELECT topic_type, encoded_message_definition FROM message_definitions")
                defs = {r[0]: r[1] for r in rows}
            except sqlite3.DatabaseError:  # bags before Iron have no message_definitions table
                pass
            # rowid order (insertion order): ORDER BY timestamp would sort the whole table first and fail at the
            # first damaged page before yielding anything; recover_bag sorts what was read
            for tid, t_ns, data in con.execute("SELECT topic_id, timestamp, data FROM messages"):
                if tid in topics:
                    name, mtype = topics[tid]
                    yield name, mtype, defs.get(mtype) or None, t_ns, bytes(data)
        except sqlite3.DatabaseError:  # malformed or cut-off database: stop at the damage
            return
        finally:
            con.close()


def recover_bag(bag: str | Path, distro: str = "kilted") -> int:
    """Rewrite an unfinished bag (no metadata.yaml, truncated mcap/sqlite3) into a readable one, in place.

    Keeps every complete message; the originals move to ``<bag>/unfinished/``
    so nothing is lost. Returns the number of messages recovered; BagError
    when nothing can be recovered.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    bag = Path(bag)
    mcaps, dbs = sorted(bag.glob("*.mcap")), sorted(bag.glob("*.db3"))
    if not mcaps and not dbs:
        raise BagError("no .mcap or .db3 file to recover")
    raw = list(_raw_from_mcap(mcaps) if mcaps else _raw_from_sqlite(dbs))
    if not raw:
        raise BagError(f"no complete message in {', '.join(f.name for f in (*mcaps, *dbs))}")
    ts = typestore(distro)
    tmp = Path(tempfile.mkdtemp(dir=bag.parent, prefix=f".{bag.name}.recover."))
    try:
        out = tmp / bag.name
        with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP if mcaps else StoragePlugin.SQLITE3) as w:
            conns: dict[str, Any] = {}
            for topic, mtype, msgdef, t_ns, data in sorted(raw, key=lambda r: r[3]):
                if topic not in conns:
                    if mtype in ts.types:
                        conns[topic] = w.add_connection(topic, mtype, typestore=ts)
                    elif msgdef:
                        conns[topic] = w.add_connection(topic, mtype, msgdef=msgdef, rihs01="")
                    else:
                        raise BagError(f"no definition for {mtype} on {topic}; cannot recover")
                w.write(conns[topic], t_ns, data)
        keep = bag / "unfinished"
        keep.mkdir(exist_ok=True)
        for f in (*mcaps, *dbs, *bag.glob("*.db3-*")):
            f.rename(keep / f.name)
        for f in out.iterdir():
            f.rename(bag / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(raw)
