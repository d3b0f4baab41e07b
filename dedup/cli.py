"""`semdedup`: SemDeDup on your own corpus, no config file needed.

    semdedup EMBEDDINGS --eps 0.05,0.1 --out DIR [--ids IDS] [--clusters K] [--keep hard|easy|random]

EMBEDDINGS is one of
  FILE.npy       an (N, d) float array; --ids FILE gives the ids (.txt one a line, or a 1-D .npy);
  FILE.parquet   an embedding column (a list of numbers per row, --column, default "embedding") and an id
                 column (--ids NAME; default "id" when the file has one);
  FILE.txt       one document a line, embedded by the packaged all-MiniLM-L6-v2 ([dedup] extra);
                 --ids FILE as for .npy;
  FILE.jsonl     one JSON object a line with a text field (--text-field, default "text") and an id field
                 (--ids NAME; default "id" when the first object has one).
Without ids, an item's id is its 0-based row (line) number.

Writes, per ε, DIR/eps=<ε>/kept_ids.{parquet,txt} and removed_ids.{parquet,txt} (removed: id, duplicate_of,
similarity), and DIR/summary.json (counts, timings, parameters). Bad input (non-UTF-8 text, duplicate or null
ids, non-finite or zero rows, mismatched lengths, a missing or wrong column) is one line naming the file and
row, exit status 2, and nothing is left behind. A killed run resumes when rerun with the same arguments. An --out
that holds a finished run of another input (or with other parameters) is refused unless --overwrite is given,
which replaces that run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

WORK = "_work"  # DIR/_work: the pipeline's stage outputs while running (removed at the end unless --keep-work)


class InputError(Exception):
    """Bad user input: one line, exit 2."""


# ------------------------------------------------------------------------------------------- reading


def _kind(path: str) -> str:
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory; expected a .npy, .parquet, .txt or .jsonl file")
    low = path.lower()
    for ext, kind in (
        (".npy", "npy"),
        (".parquet", "parquet"),
        (".pq", "parquet"),
        (".txt", "txt"),
        (".jsonl", "jsonl"),
    ):
        if low.endswith(ext):
            return kind
    raise InputError(f"{path}: unknown format; expected .npy, .parquet, .txt or .jsonl")


def _first_bad_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def check_rows(x, path: str, chunk: int = 65536) -> None:
    """Every row finite and non-zero (a zero row has no direction), streamed; InputError names the first bad row."""
    from dedup import pipeline

    nonfin, zero = pipeline._row_checks(x, chunk)
    if nonfin.any():
        r = _first_bad_row(nonfin)
        raise InputError(f"{path}: row {r} is not finite (NaN or inf); {int(nonfin.sum())} such rows")
    if zero.any():
        r = _first_bad_row(zero)
        raise InputError(f"{path}: row {r} is all zeros; {int(zero.sum())} such rows")


def check_ids(ids: np.ndarray, path: str) -> None:
    """Ids are unique and usable as text lines; InputError names the row that repeats an earlier id."""
    if ids.dtype.kind in "OUS":
        for r, v in enumerate(ids.tolist()):
            if "\n" in v or "\r" in v:
                raise InputError(f"{path}: id at row {r} contains a line break")
    o = np.argsort(ids, kind="stable")
    s = ids[o]
    same = np.flatnonzero(s[1:] == s[:-1])
    if same.size:
        later = o[same + 1]
        k = int(np.argmin(later))
        r = int(later[k])
        first = int(o[np.searchsorted(s, s[same[k]], side="left")])
        raise InputError(f"{path}: row {r} repeats the id {ids[r].item()!r} of row {first}; ids must be unique")


def _ids_array(values: list, path: str) -> np.ndarray:
    """A 1-D int64 or str array of user ids (all ints or all strings; no nulls)."""
    for r, v in enumerate(values):
        if v is None:
            raise InputError(f"{path}: the id at row {r} is null")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.asarray(values, np.int64)
    if all(isinstance(v, str) for v in values):
        return np.asarray(values, dtype=str)
    r = next(i for i, v in enumerate(values) if not isinstance(v, type(values[0])) or isinstance(v, bool))
    raise InputError(
        f"{path}: the id at row {r} ({values[r]!r}) is not of the same type as row 0; use all integers or all strings"
    )


def read_ids_file(path: str) -> np.ndarray:
    """An ids file: .npy (1-D integers or strings) or text, one id a line (kept as strings)."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such ids file")
    if path.lower().endswith(".npy"):
        try:
            a = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
            raise InputError(f"{path}: cannot read as a .npy array ({type(e).__name__})") from None
        if a.ndim != 1 or a.dtype.kind not in "iuU":
            raise InputError(f"{path}: ids must be a 1-D integer or string array, got {a.dtype} {a.shape}")
        return a.astype(np.int64) if a.dtype.kind in "iu" else a
    from dedup import text

    try:
        return np.asarray(text.read_lines(path), dtype=str)
    except text.TextInputError as e:
        raise InputError(str(e)) from None


def read_parquet(path: str, column: str, id_column: str | None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(embeddings float32 (N, d), ids or None, the id column used) from a Parquet file."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path}: cannot read as Parquet ({type(e).__name__}: {' '.join(str(e).split())})") from None
    names = schema.names
    if column not in names:
        raise InputError(f"{path}: no embedding column {column!r} (columns: {', '.join(names)}); pass --column")
    if id_column is None and "id" in names:
        id_column = "id"
    if id_column is not None and id_column not in names:
        raise InputError(f"{path}: no id column {id_column!r} (columns: {', '.join(names)})")
    t = schema.field(column).type
    is_list = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    if not is_list or not (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
        raise InputError(f"{path}: column {column!r} has type {t}; expected a list of numbers per row")
    if id_column is not None:
        it = schema.field(id_column).type
        if not (pa.types.is_integer(it) or pa.types.is_string(it) or pa.types.is_large_string(it)):
            raise InputError(f"{path}: id column {id_column!r} has type {it}; expected integers or strings")
    table = pq.read_table(path, columns=[column] + ([id_column] if id_column else []))
    arr = table.column(column).combine_chunks()
    n = len(arr)
    if n == 0:
        raise InputError(f"{path}: no rows")
    if arr.null_count:
        raise InputError(
            f"{path}: row {_first_bad_row(arr.is_null().to_numpy(zero_copy_only=False))} has a null {column!r}"
        )
    lens = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    d = int(lens[0])
    if d == 0 or (lens != d).any():
        r = 0 if d == 0 else _first_bad_row(lens != d)
        raise InputError(f"{path}: row {r} of {column!r} has {int(lens[r])} numbers, row 0 has {d}")
    x = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, d)
    ids = None
    if id_column is not None:
        ic = table.column(id_column).combine_chunks()
        if ic.null_count:
            raise InputError(
                f"{path}: the id at row {_first_bad_row(ic.is_null().to_numpy(zero_copy_only=False))} is null"
            )
        ids = ic.to_numpy(zero_copy_only=False)
        ids = ids.astype(np.int64) if pa.types.is_integer(ic.type) else ids.astype(str)
    return x, ids, id_column or ""


# ------------------------------------------------------------------------------------------- outputs


def _atomic(path: str, write) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


def _write_ids(d: str, name: str, cols: dict[str, np.ndarray]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _atomic(
        os.path.join(d, f"{name}.parquet"),
        lambda p: pq.write_table(pa.table({k: pa.array(v) for k, v in cols.items()}), p),
    )

    def txt(p):
        with open(p, "w", encoding="utf-8") as f:
            f.writelines(f"{v}\n" for v in cols["id"].tolist())

    _atomic(os.path.join(d, f"{name}.txt"), txt)


# ------------------------------------------------------------------------------------------- main


def _parse_eps(s: str) -> list[float]:
    try:
        eps = [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--eps: expected comma-separated numbers, got {s!r}") from None
    if not eps:
        raise InputError("--eps: give at least one ε")
    bad = [e for e in eps if not 0.0 < e < 2.0]
    if bad:
        raise InputError(f"--eps: every ε must be in (0, 2) (cosine distance), got {bad[0]!r}")
    if len(set(eps)) != len(eps):
        raise InputError(f"--eps: repeated value in {s!r}")
    return sorted(eps)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="semdedup",
        description="SemDeDup (Abbas et al. 2023): semantic deduplication of your corpus by embeddings, "
        "k-means and the per-cluster rule (remove an item whose cosine to an earlier item of its cluster "
        "exceeds 1 - eps).",
    )
    p.add_argument("embeddings", metavar="EMBEDDINGS", help=".npy, .parquet, .txt or .jsonl")
    p.add_argument("--eps", required=True, help="comma-separated thresholds, e.g. 0.05,0.1")
    p.add_argument("--out", required=True, help="output directory (created; must be new or a previous run's)")
    p.add_argument("--ids", default=None, help="id column/field (.parquet/.jsonl) or ids file (.npy/.txt input)")
    p.add_argument("--clusters", type=int, default=0, help="k-means clusters (default round(sqrt(N)))")
    p.add_argument("--keep", default="hard", choices=("hard", "easy", "random"))
    p.add_argument("--tie-break", default="released", choices=("released", "lowest_id"))
    p.add_argument("--column", default="embedding", help="the Parquet embedding column")
    p.add_argument("--text-field", default="text", help="the .jsonl text field")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=20, help="k-means iterations at most")
    p.add_argument("--keep-work", action="store_true", help=f"keep DIR/{WORK} (the stage outputs) at the end")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out when it was made from another input or with other parameters",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return p


def _prepare(a, eps: list[float]) -> dict:
    """Reads and checks the input (nothing written). Returns what the run needs."""
    from dedup import pipeline, text

    path = a.embeddings
    kind = _kind(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    if a.clusters < 0:
        raise InputError(f"--clusters: must be >= 0, got {a.clusters}")
    if a.iterations < 1:
        raise InputError(f"--iterations: must be >= 1, got {a.iterations}")
    prep: dict = {"kind": kind, "path": path, "x": None, "ids": None, "ids_source": "row numbers (0-based)"}
    if kind in ("npy", "txt") and a.ids is not None:
        prep["ids"] = read_ids_file(a.ids)
        prep["ids_source"] = f"file {a.ids}"
    if kind == "npy":
        try:
            x = pipeline.load_user_embeddings(path)
        except Exception as e:  # noqa: BLE001 - UserError from the loader
            raise InputError(str(e).removeprefix("embeddings: ")) from None
        check_rows(x, path)
        n = x.shape[0]
    elif kind == "parquet":
        x, ids, col = read_parquet(path, a.column, a.ids)
        check_rows(x, path)
        prep["x"], n = x, x.shape[0]
        if ids is not None:
            prep["ids"], prep["ids_source"] = ids, f"column {col}"
    else:
        try:
            if kind == "jsonl":
                id_field = a.ids
                if id_field is None:
                    with open(path, "rb") as f:
                        try:
                            first = json.loads(f.readline() or b"{}")
                        except (json.JSONDecodeError, UnicodeDecodeError):
                            first = {}
                    id_field = "id" if isinstance(first, dict) and "id" in first else None
                docs, ids = text.read_jsonl(path, a.text_field, id_field)
                if ids is not None:
                    prep["ids"], prep["ids_source"] = _ids_array(ids, path), f"field {id_field}"
            else:
                docs = text.read_lines(path)
        except text.TextInputError as e:
            raise InputError(str(e)) from None
        n = len(docs)
        if n == 0:
            raise InputError(f"{path}: no documents")
        if all(not d.strip() for d in docs):
            raise InputError(f"{path}: every document is blank")
    if prep["ids"] is not None:
        src = a.ids if kind in ("npy", "txt") else path
        if prep["ids"].shape[0] != n:
            raise InputError(f"{src}: {prep['ids'].shape[0]} ids for the {n} rows of {path}")
        check_ids(prep["ids"], src)
    prep["n"] = n
    if a.clusters > n:
        raise InputError(f"--clusters: {a.clusters} exceeds the {n} rows of {path}")
    return prep


def _config(a, eps, prep, work: str):
    from dedup.configs import default

    c = default.get_config()
    c.seed = int(a.seed)
    c.eps = tuple(eps)
    c.eval_eps = eps[0]
    c.keep = a.keep
    c.tie_break = a.tie_break
    c.n_clusters = int(a.clusters)
    c.kmeans.iterations = int(a.iterations)
    c.text_field = a.text_field
    c.pipeline_dir = os.path.join(work, "pipeline")
    c.figures = False
    if prep["kind"] == "npy":
        c.embeddings = os.path.abspath(prep["path"])
    elif prep["kind"] == "parquet":
        c.embeddings = os.path.join(work, "embeddings.npy")
    else:
        c.texts = os.path.abspath(prep["path"])
    if a.tie_break == "lowest_id" and prep["ids"] is not None:
        c.id_rank = os.path.join(work, "id_rank.npy")
    return c


def _input_stat(path: str) -> dict:
    """What identifies an input file for the check of an earlier run in --out: its absolute path, size and
    modification time (a rewritten file is another input)."""
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _run_parameters(a, eps: list[float]) -> dict:
    """The arguments that change the outputs (summary.json `parameters` holds them with a few more)."""
    return {
        "eps": eps,
        "keep": a.keep,
        "tie_break": a.tie_break,
        "clusters": int(a.clusters),
        "seed": int(a.seed),
        "kmeans_iterations_max": int(a.iterations),
        "ids": a.ids,
        "column": a.column,
        "text_field": a.text_field,
    }


IDENTITY = "identity.json"  # DIR/_work/identity.json: the input and parameters of a run in progress


def _previous_run(out: str) -> dict | None:
    """The identity of the run in --out: from summary.json (finished) or the work folder (interrupted)."""
    for p in (os.path.join(out, "summary.json"), os.path.join(out, WORK, IDENTITY)):
        if os.path.isfile(p):
            try:
                with open(p, encoding="utf-8") as f:
                    return json.load(f)
            except (OSError, ValueError):
                return {}
    return None


def _check_previous(out: str, a, eps: list[float]) -> bool:
    """Whether --out holds a finished run of another input or with other parameters (then it must be replaced with
    --overwrite; without it, InputError). Returns True when the old run is to be cleared."""
    prev = _previous_run(out)
    if prev is None:
        return False
    same = prev.get("input_stat") == _input_stat(a.embeddings) and prev.get("run_parameters") == _run_parameters(a, eps)
    if same:
        return False
    if not a.overwrite:
        what = "another input" if prev.get("input_stat", {}).get("path") != os.path.abspath(a.embeddings) else None
        what = what or ("another version of the input" if prev.get("input_stat") != _input_stat(a.embeddings) else None)
        what = what or "other parameters"
        raise InputError(
            f"--out: {out} holds a run of {what} ({prev.get('input', '?')}); pass --overwrite to replace it, "
            f"or choose another --out"
        )
    return True


def _clear_previous(out: str) -> None:
    """Removes an earlier run's outputs from --out: its eps=* folders, summary.json and work folder."""
    for name in os.listdir(out):
        p = os.path.join(out, name)
        if name.startswith("eps=") and os.path.isdir(p) or name == WORK:
            shutil.rmtree(p)
    if os.path.exists(os.path.join(out, "summary.json")):
        os.unlink(os.path.join(out, "summary.json"))


class _DropRemovedPaths:
    """A logging filter that drops messages naming a path under the work folder, which is removed at the end: the
    log names only files that remain."""

    def __init__(self, work: str):
        self.work = (os.path.abspath(work), work)

    def filter(self, record) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge
            return True
        return not any(w in msg for w in self.work)


def _check_out(out: str, work: str) -> None:
    """--out must be a directory that is new, empty, or holds an earlier semdedup run."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out: {out} exists and is not a directory")
    if (
        os.path.isdir(out)
        and os.listdir(out)
        and not os.path.isdir(work)
        and not os.path.isfile(os.path.join(out, "summary.json"))
    ):
        raise InputError(f"--out: {out} exists, is not empty and holds no earlier semdedup run")


def _start_work(a, eps, prep: dict, work: str):
    """Writes the run's identity and inputs into the work folder; returns the experiment config."""
    from common import metrics

    os.makedirs(work, exist_ok=True)
    metrics.atomic_write_json(
        os.path.join(work, IDENTITY),
        {
            "input": os.path.abspath(prep["path"]),
            "input_stat": _input_stat(prep["path"]),
            "run_parameters": _run_parameters(a, eps),
        },
    )
    cfg = _config(a, eps, prep, work)
    if prep["kind"] == "parquet" and not os.path.exists(cfg.embeddings):
        metrics.atomic_save_npy(cfg.embeddings, prep["x"])
    if cfg.id_rank:
        rank = np.empty(prep["n"], np.int64)
        rank[np.argsort(prep["ids"], kind="stable")] = np.arange(prep["n"])
        metrics.atomic_save_npy(cfg.id_rank, rank)
    prep["x"] = None
    cfg.overwrite = False
    return cfg


def _write_outputs(out: str, work: str, eps, prep: dict, r: dict) -> tuple[dict, dict]:
    """Each ε's kept and removed ids in the user's ids under --out; returns (per-ε counts, excluded user ids)."""
    from dedup import pipeline

    uid = prep["ids"]

    def to_user(rows: np.ndarray) -> np.ndarray:
        return rows.astype(np.int64) if uid is None else uid[rows]

    summary_eps = {}
    for e in eps:
        name = pipeline.eps_name(e)
        src = os.path.join(work, "run", name)
        kept = np.load(os.path.join(src, "kept_ids.npy"))
        rem = np.load(os.path.join(src, "removed_ids.npy"))
        dup = np.load(os.path.join(src, "duplicate_of.npy"))
        sim = np.load(os.path.join(src, "similarity.npy"))
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        _write_ids(d, "kept_ids", {"id": to_user(kept)})
        _write_ids(d, "removed_ids", {"id": to_user(rem), "duplicate_of": to_user(dup), "similarity": sim})
        summary_eps[name[4:]] = {
            "kept": int(kept.size),
            "removed": int(rem.size),
            "kept_fraction": kept.size / r["n_items"],
        }
    excluded = {
        k: [v.item() if hasattr(v, "item") else v for v in to_user(np.asarray(ids, np.int64))]
        for k, ids in r.get("excluded_ids", {}).items()
    }
    return summary_eps, excluded


def _summary(a, eps, prep: dict, cfg, r: dict, summary_eps: dict, excluded: dict, out: str, t0: float) -> dict:
    return {
        "input": os.path.abspath(prep["path"]),
        "format": prep["kind"],
        "ids": prep["ids_source"],
        "n_rows": r["n_total"],
        "n_items": r["n_items"],
        "excluded": r.get("excluded", {}),
        "excluded_ids": excluded,
        "n_clusters": r["n_clusters"],
        "kmeans_iterations": r["kmeans_iterations"],
        "eps": summary_eps,
        "timings": {**r.get("stage_seconds", {}), "total": round(time.time() - t0, 2)},
        "peak_rss_mb": r.get("peak_rss_mb"),
        "parameters": {
            "eps": eps,
            "keep": a.keep,
            "tie_break": a.tie_break,
            "clusters": int(a.clusters),
            "seed": int(a.seed),
            "kmeans_iterations_max": int(a.iterations),
            "kmeans_sample_size": int(cfg.kmeans.sample_size),
            "rule": cfg.rule,
            "column": a.column if prep["kind"] == "parquet" else None,
            "text_field": a.text_field if prep["kind"] == "jsonl" else None,
        },
        "input_stat": _input_stat(prep["path"]),
        "run_parameters": _run_parameters(a, eps),
        "outputs": os.path.abspath(out),
    }


def run(argv: list[str] | None = None) -> dict:
    """Parses argv, runs the pipeline and writes the outputs; returns the summary. Raises InputError."""
    from absl import logging

    from common import app, metrics
    from dedup import experiment

    a = _parser().parse_args(argv)
    logging.set_verbosity(logging.INFO if a.verbose else logging.WARNING)
    eps = _parse_eps(a.eps)
    out = a.out
    work = os.path.join(out, WORK)
    _check_out(out, work)
    t0 = time.time()
    prep = _prepare(a, eps)
    clear = _check_previous(out, a, eps)
    created = not os.path.exists(out)
    app.use_cores_as_devices()
    drop = None
    if not a.keep_work:
        drop = _DropRemovedPaths(work)
        logging.get_absl_logger().addFilter(drop)
    try:
        if clear:
            _clear_previous(out)
        cfg = _start_work(a, eps, prep, work)
        try:
            r = app.execute(experiment, cfg, os.path.join(work, "run"))
        except (app.ConfigError, app.UserError) as e:
            raise InputError(str(e)) from None
        summary_eps, excluded = _write_outputs(out, work, eps, prep, r)
        summary = _summary(a, eps, prep, cfg, r, summary_eps, excluded, out, t0)
        metrics.atomic_write_json(os.path.join(out, "summary.json"), summary)
    except InputError:  # bad input: nothing left behind (an interrupted run keeps DIR/_work and resumes)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        if drop is not None:
            logging.get_absl_logger().removeFilter(drop)
    if not a.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    logging.info("outputs written to %s", os.path.abspath(out))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Console entry point (`semdedup`): exit 0, or 2 with one line on bad input."""
    try:
        s = run(sys.argv[1:] if argv is None else argv)
    except InputError as e:
        sys.stderr.write(f"semdedup: error: {' '.join(str(e).split())}\n")
        return 2
    for e, v in s["eps"].items():
        print(
            f"eps={e}: kept {v['kept']:,} removed {v['removed']:,} of {s['n_items']:,} ({v['kept_fraction']:.4f} kept)"
        )
    print(f"outputs in {s['outputs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
