"""Spark sources: a local session over a warehouse folder, or a Spark Connect server.

``spark://local`` is a ``local[*]`` session (``AUDIENCESYNC_SPARK_MASTER``) whose
warehouse is the folder ``AUDIENCESYNC_SPARK_WAREHOUSE``. Its catalog is Spark's
in-memory one, rebuilt from the folder each time a table is opened: every folder of
Parquet files ``<warehouse>/<table>`` is table ``<table>``, and
``<warehouse>/<schema>.db/<table>`` is ``<schema>.<table>`` (the layout
``saveAsTable`` writes with that warehouse). So the catalog survives processes, and no
two processes fight over an embedded Derby metastore: there is none.

``sc://host:port`` is a Spark Connect server, whose own catalog is used as is.

One session per process is shared by every open (starting one takes seconds); the Ibis
backend's ``disconnect`` does not stop it.

Members are never collected to the driver: ``write_members`` has Spark write the result
as Parquet into a folder (the exchange folder), which the engine reads in batches.
"""

from __future__ import annotations

import functools
import re
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

from audiencesync.errors import UserInputError
from audiencesync.settings import Settings

# PySpark 4.3 warns at import and on Arrow conversions that pandas 3 is not fully
# supported; audiencesync never converts through pandas (Arrow and Parquet only).
warnings.filterwarnings(
    "ignore", message=r"PySpark does not yet fully support pandas", category=FutureWarning
)

SCHEMES = frozenset({"spark", "sc"})
LOCAL = "spark://local"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Row-group size of the members' Parquet Spark writes.
EXCHANGE_ROW_GROUP_BYTES = 8 << 20

_lock = threading.Lock()
_local: tuple[str, Any] | None = None  # (warehouse, session)


def is_spark(url: str) -> bool:
    return url.partition("://")[0].split("+", 1)[0].strip().lower() in SCHEMES


def _warehouse(settings: Settings) -> Path:
    if settings.spark_warehouse is None:
        raise UserInputError(
            "spark://local needs a warehouse folder: set AUDIENCESYNC_SPARK_WAREHOUSE to the "
            "folder that holds the Spark tables."
        )
    folder = settings.spark_warehouse.expanduser().resolve()
    if not folder.is_dir():
        raise UserInputError(
            f"the Spark warehouse folder {folder} does not exist: create it or correct "
            "AUDIENCESYNC_SPARK_WAREHOUSE."
        )
    return folder


def local_session(settings: Settings) -> Any:
    """This process's local SparkSession over the settings' warehouse (started once)."""
    global _local
    warehouse = str(_warehouse(settings))
    with _lock:
        if _local is not None and _local[0] == warehouse:
            return _local[1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            from pyspark.sql import SparkSession

        if _local is not None:
            _local[1].stop()
            _local = None
        session = (
            SparkSession.builder.master(settings.spark_master)
            .appName("audiencesync")
            .config("spark.sql.warehouse.dir", warehouse)
            .config("spark.sql.catalogImplementation", "in-memory")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "8")
            .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        _local = (warehouse, session)
        return session


def register_tables(session: Any, warehouse: Path) -> None:
    """Make every Parquet table folder of ``warehouse`` a table of ``session``'s catalog."""
    catalog = session.catalog
    for entry in sorted(warehouse.iterdir()):
        if not entry.is_dir() or entry.name.startswith((".", "_")):
            continue
        if entry.name.endswith(".db"):
            schema = entry.name.removesuffix(".db")
            if not _IDENT.match(schema):
                continue
            session.sql(f"CREATE DATABASE IF NOT EXISTS `{schema}` LOCATION '{_quote(entry)}'")
            for table in sorted(entry.iterdir()):
                _register(session, catalog, f"`{schema}`.`{table.name}`", table)
        else:
            _register(session, catalog, f"`default`.`{entry.name}`", entry)


def _quote(path: Path) -> str:
    return str(path).replace("\\", "\\\\").replace("'", "\\'")


def _register(session: Any, catalog: Any, name: str, folder: Path) -> None:
    if not folder.is_dir() or not _IDENT.match(folder.name):
        return
    if not any(p.suffix == ".parquet" for p in folder.iterdir()):
        return
    if catalog.tableExists(name.replace("`", "")):
        session.sql(f"REFRESH TABLE {name}")  # files written by another process
        return
    session.sql(f"CREATE TABLE {name} USING parquet LOCATION '{_quote(folder)}'")


def connect(url: str, settings: Settings) -> Any:
    """An Ibis pyspark backend for ``url`` on the shared session."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)

    scheme, _, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if scheme == "spark":
        if rest.strip("/").lower() != "local":
            raise UserInputError(
                "a spark:// URL must be spark://local (a local session over "
                "AUDIENCESYNC_SPARK_WAREHOUSE); use sc://host:port for a Spark Connect server."
            )
        session = local_session(settings)
        register_tables(session, _warehouse(settings))
    else:
        session = _connect_session(url)
    return _backend_class()().connect(session)


@functools.cache
def _backend_class() -> type:
    """Ibis's pyspark backend, reading results as Arrow and leaving the session running.

    Ibis 12 converts results through pandas (``toPandas``), which fails with pandas 3
    and costs memory; PySpark 4's ``toArrow`` returns the Arrow table directly. Only small
    results (counts, previews, explain) are read this way; members go through Parquet.
    """
    import ibis
    from ibis.backends.pyspark import Backend
    from ibis.formats.pyarrow import PyArrowData

    # Loaded through ``ibis.pyspark`` once, so Ibis registers the backend's options (its
    # compiler reads ``ibis.options.pyspark``).
    ibis.pyspark  # noqa: B018

    class SharedSessionBackend(Backend):  # type: ignore[misc]
        def disconnect(self) -> None:
            """The session is shared by the whole process: leave it running."""

        def to_pyarrow(
            self,
            expr: Any,
            /,
            *,
            params: Any = None,
            limit: int | str | None = None,
            **kwargs: Any,
        ) -> Any:
            self._run_pre_execute_hooks(expr)
            table_expr = expr.as_table()
            sql = self.compile(table_expr, params=params, limit=limit, **kwargs)
            output = self._session.sql(sql).toArrow()
            return expr.__pyarrow_result__(PyArrowData.convert_table(output, table_expr.schema()))

    return SharedSessionBackend


def _connect_session(url: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            from pyspark.sql import SparkSession

            return SparkSession.builder.remote(url).getOrCreate()
    except ImportError:
        raise UserInputError(
            "Spark Connect needs its client libraries: pip install 'audiencesync[spark-connect]'."
        ) from None


def exchange_folder(settings: Settings, url_is_local: bool) -> Path:
    """A new empty-to-be folder path Spark writes one result into."""
    base = settings.spark_exchange
    if base is None:
        if not url_is_local:
            raise UserInputError(
                "a Spark Connect source writes members to a folder the server and this "
                "machine share: set AUDIENCESYNC_SPARK_EXCHANGE to it."
            )
        base = settings.resolved_home / "scratch" / "spark"
    base = base.expanduser().resolve()
    base.mkdir(parents=True, exist_ok=True)
    return base / f"members-{uuid.uuid4().hex}"


def write_members(backend: Any, sql: str, folder: Path) -> None:
    """Have Spark evaluate ``sql`` and write its rows as Parquet into ``folder``."""
    frame = backend.raw_sql(sql)
    # Small row groups, so the reader holds a few megabytes at a time rather than
    # Spark's 128 MB groups; uncompressed, as the folder is read once, locally, and removed.
    (
        frame.write.mode("error")
        .option("parquet.block.size", str(EXCHANGE_ROW_GROUP_BYTES))
        .option("compression", "none")
        .parquet(str(folder))
    )
