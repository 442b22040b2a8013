"""A local FerretDB (MongoDB wire protocol over SQLite), built from the Go module proxy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hub.provision.cache import cached_entry, copy_out, key_of
from hub.provision.process import ManagedProcess, ProvisionError, run_checked

MODULE = "github.com/FerretDB/FerretDB"

_QUERY_ID_BLOCK = """\
	if params.Filter.Len() == 1 {
		v, _ := params.Filter.Get("_id")
		switch v.(type) {
		case string, types.ObjectID:
			whereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)
			args = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}
		}
	}

	q += whereClause
"""

_QUERY_ID_BLOCK_PATCHED = """\
	if params.Filter.Len() >= 1 {
		v, _ := params.Filter.Get("_id")
		switch v := v.(type) {
		case string, types.ObjectID:
			whereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)
			args = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}
		case *types.Document:
			if in, ok := hubIDsIn(v); ok {
				marks := strings.TrimSuffix(strings.Repeat("?, ", len(in)), ", ")
				whereClause = fmt.Sprintf(` WHERE %s IN (%s)`, metadata.IDColumn, marks)
				args = in
			}
		}
	}

	q += whereClause
"""

_EXPLAIN_ID_BLOCK = """\
	if params.Filter.Len() == 1 {
		v, _ := params.Filter.Get("_id")
		switch v.(type) {
		case string, types.ObjectID:
			filterPushdown = true
			whereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)
			args = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}
		}
	}
"""

_EXPLAIN_ID_BLOCK_PATCHED = """\
	if params.Filter.Len() >= 1 {
		v, _ := params.Filter.Get("_id")
		switch v := v.(type) {
		case string, types.ObjectID:
			filterPushdown = params.Filter.Len() == 1
			whereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)
			args = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}
		case *types.Document:
			if in, ok := hubIDsIn(v); ok {
				filterPushdown = params.Filter.Len() == 1
				marks := strings.TrimSuffix(strings.Repeat("?, ", len(in)), ", ")
				whereClause = fmt.Sprintf(` WHERE %s IN (%s)`, metadata.IDColumn, marks)
				args = in
			}
		}
	}
"""

_IDS_IN_HELPER = """\
// hubIDsIn returns the SQL arguments for an `_id` condition of the form {$in: [...]} that
// holds only strings and ObjectIDs (at most 1000), or false.
func hubIDsIn(cond *types.Document) ([]any, bool) {
	if cond.Len() != 1 {
		return nil, false
	}
	v, err := cond.Get("$in")
	if err != nil {
		return nil, false
	}
	arr, ok := v.(*types.Array)
	if !ok || arr.Len() == 0 || arr.Len() > 1000 {
		return nil, false
	}
	args := make([]any, 0, arr.Len())
	for i := 0; i < arr.Len(); i++ {
		e := must.NotFail(arr.Get(i))
		switch e.(type) {
		case string, types.ObjectID:
			args = append(args, string(must.NotFail(sjson.MarshalSingleValue(e))))
		default:
			return nil, false
		}
	}
	return args, true
}

"""

# Source fixes applied before the build: (file, original text, replacement). The build's
# folder carries PATCH_LEVEL, so a machine with an older build rebuilds once.
PATCH_LEVEL = "hub5"
PATCHES: tuple[tuple[str, str, str], ...] = (
    # The SQLite backend finds documents by `_id` (find, update, delete by `_id`) with
    # `_ferretdb_sjson->'$._id'`, but creates its unique `_id` index on
    # `_ferretdb_sjson->"_id"`: SQLite only uses an expression index for the same
    # expression, so every lookup by `_id` scanned the collection (4 ms at 2,500 documents
    # instead of 5 us). `->'_id'` is the same JSON path and matches the index.
    (
        "internal/backends/sqlite/metadata/metadata.go",
        "IDColumn = DefaultColumn + \"->'$._id'\"",
        "IDColumn = DefaultColumn + \"->'_id'\"",
    ),
    # Queries push `_id` down to SQLite only for {_id: <string>} alone; an update such as
    # {_id, updatedAt: {$lt: ...}} or a find of {_id: {$in: [...]}} scanned the collection.
    # A backend may apply a filter partially (backends.Collection.Query's contract: every
    # handler filters the documents again), so push an `_id` equality or a short `$in` of
    # strings down whatever else the filter holds.
    (
        "internal/backends/sqlite/collection.go",
        _QUERY_ID_BLOCK,
        _QUERY_ID_BLOCK_PATCHED,
    ),
    # An update command kept every statement's query iterator, and with it one of the
    # database's 100 pooled SQLite connections, open until the whole command returned: a
    # bulk write of 100 statements, or concurrent ones on one database adding up to 100,
    # waited for a connection forever. Close each statement's iterator once it is applied.
    (
        "internal/handler/msg_update.go",
        "\t\tcloser := iterator.NewMultiCloser()\n\t\tdefer closer.Close()\n",
        "\t\tcloser := iterator.NewMultiCloser()\n",
    ),
    (
        "internal/handler/msg_update.go",
        '\t\tresult, err := common.UpdateDocument(ctx, c, "update", iter, &u)\n'
        "\t\tif err != nil {\n",
        '\t\tresult, err := common.UpdateDocument(ctx, c, "update", iter, &u)\n'
        "\t\tcloser.Close()\n"
        "\t\tif err != nil {\n",
    ),
    # `explain` shows the plan the query runs (it says "filterPushdown" only when the
    # whole filter was applied by SQLite).
    ("internal/backends/sqlite/collection.go", _EXPLAIN_ID_BLOCK, _EXPLAIN_ID_BLOCK_PATCHED),
    (
        "internal/backends/sqlite/collection.go",
        "// collection implements backends.Collection interface.\n",
        _IDS_IN_HELPER + "// collection implements backends.Collection interface.\n",
    ),
)


def apply_patches(src: Path) -> None:
    """Apply PATCHES to a FerretDB source tree; fails loudly if one no longer applies."""
    for rel, old, new in PATCHES:
        path = src / rel
        text = path.read_text()
        if text.count(old) != 1:
            raise ProvisionError(f"FerretDB patch no longer applies to {rel}: {old!r} not found")
        path.write_text(text.replace(old, new))


def _go_env(home: Path) -> dict[str, str]:
    go = home / "go"
    # -modcacherw lets `rm -rf` remove the module cache (Go makes its files read-only).
    return {
        "GOMODCACHE": str(go / "mod"),
        "GOCACHE": str(go / "cache"),
        "GOPATH": str(go / "path"),
        "GOFLAGS": "-modcacherw",
        "CGO_ENABLED": "0",
    }


def _go_build(version: str, work: Path, binary: Path, go_home: Path, log: Path) -> None:
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise ProvisionError("Go is needed to build FerretDB: install Go 1.22+ (golang-go)")
    env = _go_env(go_home)
    proc = subprocess.run(
        [go, "mod", "download", "-json", f"{MODULE}@{version}"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ProvisionError(f"downloading {MODULE}@{version} failed:\n{proc.stdout}{proc.stderr}")
    module_dir = Path(json.loads(proc.stdout)["Dir"])
    src = work / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(module_dir, src)
    for path in src.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    (src / "build" / "version" / "version.txt").write_text(version + "\n")
    apply_patches(src)
    run_checked(
        [go, "build", "-trimpath", "-buildvcs=false", "-o", str(binary), "./cmd/ferretdb"],
        what=f"building FerretDB {version}",
        cwd=src,
        env=env,
        log=log,
    )
    shutil.rmtree(src)


def build_ferretdb(version: str, home: Path, cache: Path | None = None) -> Path:
    """Build the `ferretdb` binary once into `<home>/ferretdb/<version>-<PATCH_LEVEL>/bin`;
    returns its path. Copied from the machine's `cache` when given (built there once per
    version and PATCHES; Go's module and build caches live there too).

    `go install MODULE/cmd/ferretdb@version` yields a binary that panics at start, because
    the module zip lacks the generated build/version/version.txt. So the module source is
    downloaded through the proxy (checked against Go's checksum database), the file is
    written, PATCHES are applied, and the command is built from it.
    """
    root = home / "ferretdb" / f"{version}-{PATCH_LEVEL}"
    binary = root / "bin" / "ferretdb"
    if binary.exists():
        return binary
    log = home / "run" / "provision.log"
    if cache is None:
        _go_build(version, root, binary, home, log)
        return binary

    def build(entry: Path) -> None:
        _go_build(version, entry.parent / ".build", entry / "ferretdb", cache, log)

    key = f"{version}-{key_of(version, repr(PATCHES))}"
    copy_out(cached_entry(cache, "ferretdb", key, build), root / "bin")
    return binary


@dataclass
class FerretDBServer:
    """FerretDB with the SQLite handler, listening on loopback."""

    home: Path
    version: str
    port: int = 27017
    name: str = "ferretdb"
    cache: Path | None = None  # the machine's provisioning cache (hub.provision.cache)

    @property
    def data_dir(self) -> Path:
        return self.home / "data" / self.name

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.home / "run")

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def prepare(self) -> list[str]:
        """Build on first use and make the data folder; returns the command line."""
        binary = build_ferretdb(self.version, self.home, self.cache)
        (self.data_dir / "sqlite").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "state").mkdir(parents=True, exist_ok=True)
        return [
            str(binary),
            "--handler=sqlite",
            # WAL without an fsync per commit (docs/operations.md, FerretDB versus MongoDB).
            f"--sqlite-url=file:{self.data_dir / 'sqlite'}/?_pragma=synchronous(NORMAL)",
            f"--listen-addr=127.0.0.1:{self.port}",
            "--telemetry=disable",
            "--debug-addr=-",
            f"--state-dir={self.data_dir / 'state'}",
            "--log-level=warn",
        ]
