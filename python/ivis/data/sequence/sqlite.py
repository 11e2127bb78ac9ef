"""A table of a SQLite database as an indexable dataset.

This is the worked example of a custom connector: with it ivis can train directly on data
stored within a database, reading one batch of rows per query instead of loading the table
into memory. A connector for another database follows the same pattern: validate the
names up front, report :attr:`~SQLiteDataset.shape`, and fetch a batch of rows by key in
one round trip in :meth:`~SQLiteDataset.get_batch`.

Examples
--------
Given ``rows``, a list of 3-tuples of numbers:

>>> import sqlite3
>>> with sqlite3.connect("cells.db") as conn:
...     conn.execute("CREATE TABLE expression (gene_a REAL, gene_b REAL, gene_c REAL)")
...     conn.executemany("INSERT INTO expression VALUES (?, ?, ?)", rows)
>>> dataset = SQLiteDataset("cells.db", "expression")
>>> dataset.shape  # (len(rows), 3)
>>> embeddings = Ivis(k=15).fit_transform(dataset)
"""

import os
import sqlite3
import threading
from pathlib import Path

import numpy as np

from ivis.data.sequence.sequence import IndexableDataset, item_or_batch, row_positions

# Bound parameters allowed in one statement when the SQLite limit cannot be queried.
_DEFAULT_MAX_VARIABLES = 999


def _quote(identifier):
    # Only ever applied to names already checked against the schema.
    return '"' + identifier.replace('"', '""') + '"'


class SQLiteDataset(IndexableDataset):
    """Rows of a SQLite table, fetched a batch at a time.

    Row ``i`` of the dataset is the table's ``i``-th row in ascending order of ``key``
    (the ``rowid`` by default). Values are returned as ``float32``; SQL ``NULL`` becomes
    NaN. The row count and key order are read once, when the dataset is created, so the
    table must not change while the dataset is in use.

    The database is opened read-only. One connection is shared by all threads and guarded
    by a lock, since sqlite3 objects are not thread-safe; after a fork, or after
    unpickling, a new connection is opened on first use.

    Parameters
    ----------
    path : str or os.PathLike
        The database file.
    table : str
        Name of the table (or view) to read.
    columns : sequence of str, optional
        Feature columns, in output order. Defaults to every column of the table except
        ``key``.
    key : str, optional
        Column that orders the rows and identifies them in queries; its values must be
        unique and not NULL, and it should be indexed (a primary key is). Defaults to the
        table's ``rowid``; a view or a ``WITHOUT ROWID`` table needs an explicit key.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    ValueError
        If ``path`` is not a SQLite database (or SQLite cannot read it), if ``table``, a
        column or ``key`` does not exist (the message lists the valid
        names), the table is empty, or ``key`` has NULL or duplicate values.

    Notes
    -----
    :meth:`get_batch` reads a batch with one ``SELECT ... WHERE key IN (...)`` query,
    split only if the batch has more distinct rows than SQLite allows bound parameters
    in one statement (at least 999, usually 32766 or more).
    """

    def __init__(self, path, table, columns=None, key=None):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"SQLite database file not found: {self.path!r}")
        self._lock = threading.Lock()
        self._conn = None
        self._pid = None

        with self._lock:
            conn = self._connect()
            try:
                tables = [
                    row[0]
                    for row in conn.execute(
                        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                        "AND substr(name, 1, 7) != 'sqlite_' ORDER BY name"
                    )
                ]
            except sqlite3.DatabaseError as error:
                raise ValueError(
                    f"Cannot read {self.path!r} as a SQLite database ({error}). Pass the path of a "
                    "SQLite database file, e.g. one written with Python's sqlite3 module."
                ) from None
            if table not in tables:
                raise ValueError(
                    f"No table {table!r} in {self.path!r}; valid tables are: "
                    f"{', '.join(tables) or '(none)'}"
                )
            table_columns = [row[1] for row in conn.execute(f"PRAGMA table_info({_quote(table)})")]
        self.table = table

        if key is not None:
            self._check_columns([key], table_columns, "key column")
        if columns is None:
            columns = [name for name in table_columns if name != key]
        elif isinstance(columns, str):
            columns = [columns]
        columns = list(columns)
        if not columns:
            raise ValueError(f"No feature columns to read from table {table!r}")
        self._check_columns(columns, table_columns, "column")
        self.columns = columns
        self.key = key
        self._key_sql = _quote(key) if key is not None else self._rowid_alias(table_columns)
        self._n_rows, self._offset, self._keys = self._index_keys()
        self._select = (
            f"SELECT {self._key_sql}, {', '.join(_quote(c) for c in columns)} "
            f"FROM {_quote(table)} WHERE {self._key_sql} IN "
        )

    def _check_columns(self, names, table_columns, what):
        for name in names:
            if not isinstance(name, str) or name not in table_columns:
                raise ValueError(
                    f"Unknown {what} {name!r} in table {self.table!r}; valid columns are: "
                    f"{', '.join(table_columns)}"
                )

    def _rowid_alias(self, table_columns):
        # A real column may shadow "rowid"; SQLite offers two other names for it.
        alias = next((a for a in ("rowid", "_rowid_", "oid") if a not in table_columns), None)
        try:
            if alias is None:
                raise sqlite3.OperationalError("every rowid alias is a column name")
            with self._lock:
                self._connect().execute(f"SELECT {alias} FROM {_quote(self.table)} LIMIT 0")
        except sqlite3.OperationalError as err:
            raise ValueError(
                f"Table {self.table!r} has no usable rowid (a view or a WITHOUT ROWID table?); "
                "pass key= with a unique column"
            ) from err
        return alias

    def _index_keys(self):
        """Return ``(n_rows, offset, keys)``: row ``i`` has key ``offset + i``, or ``keys[i]``."""
        table = _quote(self.table)
        with self._lock:
            conn = self._connect()
            n_rows, n_keys, n_distinct, n_int, low, high = conn.execute(
                f"SELECT COUNT(*), COUNT({self._key_sql}), COUNT(DISTINCT {self._key_sql}), "
                f"SUM(typeof({self._key_sql}) = 'integer'), MIN({self._key_sql}), "
                f"MAX({self._key_sql}) FROM {table}"
            ).fetchone()
            if n_rows == 0:
                raise ValueError(f"Table {self.table!r} in {self.path!r} is empty")
            if self.key is None and n_keys != n_rows:
                # Views accept "rowid" but it is NULL there.
                raise ValueError(
                    f"Table {self.table!r} has no usable rowid (a view?); "
                    "pass key= with a unique column"
                )
            if n_keys != n_rows or n_distinct != n_rows:
                raise ValueError(
                    f"Key column {self.key!r} of table {self.table!r} must be unique and not NULL"
                )
            if n_int == n_rows and high - low + 1 == n_rows:
                # Consecutive integer keys: positions map to keys by an offset, no index needed.
                return n_rows, low, None
            keys = [
                row[0]
                for row in conn.execute(
                    f"SELECT {self._key_sql} FROM {table} ORDER BY {self._key_sql}"
                )
            ]
        if n_int == n_rows:
            keys = np.asarray(keys, dtype=np.int64)  # 8 bytes a row instead of a Python int
        return n_rows, 0, keys

    def _connect(self):
        # Callers hold self._lock. A connection must not cross a fork, so reopen in a child.
        if self._conn is None or self._pid != os.getpid():
            uri = Path(self.path).resolve().as_uri() + "?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._pid = os.getpid()
        return self._conn

    @property
    def shape(self):
        """tuple of int: ``(n_rows, n_columns)``."""
        return (self._n_rows, len(self.columns))

    def __len__(self):
        return self._n_rows

    def _keys_at(self, positions):
        if self._keys is None:
            return (positions + self._offset).tolist()
        if isinstance(self._keys, np.ndarray):
            return self._keys[positions].tolist()
        return [self._keys[p] for p in positions]

    def get_batch(self, idx_seq):
        """Fetch the rows at the given positions with one query, in the order requested.

        Parameters
        ----------
        idx_seq : sequence of int
            Row positions; may repeat and may be negative.

        Returns
        -------
        numpy.ndarray
            ``float32`` array of shape ``(len(idx_seq), n_columns)``.
        """
        positions = row_positions(idx_seq, self._n_rows)
        if positions.size == 0:
            return np.empty((0, len(self.columns)), dtype=np.float32)
        # Fetch each distinct row once, then expand to the requested order and repeats.
        unique, inverse = np.unique(positions, return_inverse=True)
        keys = self._keys_at(unique)
        rows = {}
        with self._lock:
            conn = self._connect()
            limit = self._max_variables(conn)
            for start in range(0, len(keys), limit):
                chunk = keys[start : start + limit]
                sql = self._select + "(" + ", ".join("?" * len(chunk)) + ")"
                for row in conn.execute(sql, chunk):
                    rows[row[0]] = row[1:]
        try:
            ordered = [rows[k] for k in keys]
        except KeyError as err:
            raise RuntimeError(
                f"Row with key {err.args[0]!r} is missing from table {self.table!r}; "
                "the table changed after the dataset was created"
            ) from None
        try:
            values = np.array(ordered, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"Non-numeric value in columns {self.columns} of table {self.table!r}: {err}"
            ) from err
        return values[inverse.ravel()]

    @staticmethod
    def _max_variables(conn):
        getlimit = getattr(conn, "getlimit", None)  # Python >= 3.11
        if getlimit is None:
            return _DEFAULT_MAX_VARIABLES
        return max(1, getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))

    def __getitem__(self, idx):
        """Return one row for an integer ``idx``, or a batch for a slice or an index list."""
        return item_or_batch(self, idx)

    def close(self):
        """Close the database connection; a later read opens a new one."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        # Close explicitly: newer Pythons warn about connections left to the collector.
        conn = getattr(self, "_conn", None)
        if conn is not None and getattr(self, "_pid", None) == os.getpid():
            conn.close()

    def __getstate__(self):
        # Connections and locks cannot be pickled; a copy reconnects on first use.
        state = self.__dict__.copy()
        state["_conn"] = None
        state["_pid"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self):
        return (
            f"{type(self).__name__}(path={self.path!r}, table={self.table!r}, "
            f"columns={self.columns!r}, key={self.key!r})"
        )
