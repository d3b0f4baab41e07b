"""The `semdedup` command on a user's corpus: Parquet with string ids, .npy with an ids file, every bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedup import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPS = (0.05, 0.2)


def _corpus(n=240, d=16, seed=0):
    """Random unit vectors plus planted copies: rows 200..239 are near copies of rows 0..39, every fourth an exact
    copy (its cosine to the original is 1, so one of the two is removed at every ε)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for j in range(200, n):
        i = j - 200
        x[j] = x[i] if i % 4 == 0 else x[i] + rng.uniform(0.03, 0.2) * rng.normal(size=d) / np.sqrt(d)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def _ids(n):
    return np.asarray([f"doc-{(i * 7919) % 1000:03d}-{i}" for i in range(n)])  # not in row order


def _parquet(path, x, ids, emb="embedding", idcol="id"):
    pq.write_table(pa.table({idcol: pa.array(ids.tolist()), emb: pa.array(x.tolist(), pa.list_(pa.float32()))}), path)


def _read(out, e, name):
    t = pq.read_table(os.path.join(out, f"eps={e!r}", f"{name}.parquet")).to_pydict()
    with open(os.path.join(out, f"eps={e!r}", f"{name}.txt"), encoding="utf-8") as f:
        assert [ln.rstrip("\n") for ln in f] == [str(v) for v in t["id"]]  # the text copy agrees
    return t


def _check_parquet_run(out, x, ids):
    with open(os.path.join(out, "summary.json")) as fh:
        s = json.load(fh)
    assert s["ids"] == "column id" and s["n_rows"] == 240 and s["n_clusters"] == 3
    assert s["parameters"]["eps"] == [0.05, 0.2] and s["parameters"]["keep"] == "hard"
    assert {"cluster", "dedup", "select", "total"} <= set(s["timings"])
    assert not os.path.exists(os.path.join(out, cli.WORK))
    g = x.astype(np.float64) @ x.T.astype(np.float64)
    row = {v: i for i, v in enumerate(ids.tolist())}
    for e in EPS:
        kept, rem = _read(out, e, "kept_ids"), _read(out, e, "removed_ids")
        assert sorted(kept["id"] + rem["id"]) == sorted(ids.tolist())  # a partition of the user's ids
        assert s["eps"][repr(e)] == {
            "kept": len(kept["id"]),
            "removed": len(rem["id"]),
            "kept_fraction": len(kept["id"]) / 240,
        }
        for r, dof, sim in zip(rem["id"], rem["duplicate_of"], rem["similarity"], strict=True):
            assert sim == pytest.approx(g[row[r], row[dof]], abs=1e-5) and sim > 1 - e - 1e-6
    # every exact copy (rows 200, 204, ...) or its original is removed at ε = 0.05, never both kept
    rem05 = set(_read(out, 0.05, "removed_ids")["id"])
    for i in range(0, 40, 4):
        assert (ids[i] in rem05) != (ids[200 + i] in rem05)


def test_parquet_with_string_ids(tmp_path, capsys):
    x, ids = _corpus(), _ids(240)
    f = str(tmp_path / "corpus.parquet")
    _parquet(f, x, ids)
    out = str(tmp_path / "out")
    assert cli.main([f, "--eps", "0.2,0.05", "--out", out, "--clusters", "3"]) == 0
    assert "eps=0.05: kept" in capsys.readouterr().out
    _check_parquet_run(out, x, ids)


@pytest.mark.slow
def test_console_script_on_parquet_with_string_ids(tmp_path):
    x, ids = _corpus(), _ids(240)
    f = str(tmp_path / "corpus.parquet")
    _parquet(f, x, ids)
    out = str(tmp_path / "out")
    exe = os.path.join(os.path.dirname(sys.executable), "semdedup")
    p = subprocess.run(
        [exe, f, "--eps", "0.2,0.05", "--out", out, "--clusters", "3"],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert p.returncode == 0, p.stderr[-800:]
    _check_parquet_run(out, x, ids)


@pytest.mark.slow
def test_npy_with_ids_file_gives_the_same_rows_as_parquet(tmp_path, capsys):
    x, ids = _corpus(seed=1), _ids(240)
    fq = str(tmp_path / "c.parquet")
    _parquet(fq, x, ids, emb="vec", idcol="key")
    fn, fi = str(tmp_path / "c.npy"), str(tmp_path / "ids.txt")
    np.save(fn, x * 2.5)  # scale does not matter: rows are normalised
    with open(fi, "w") as f:
        f.writelines(f"{v}\n" for v in ids)
    assert (
        cli.main(
            [
                fq,
                "--eps",
                "0.05,0.2",
                "--out",
                str(tmp_path / "a"),
                "--clusters",
                "3",
                "--column",
                "vec",
                "--ids",
                "key",
                "--keep",
                "easy",
            ]
        )
        == 0
    )
    assert (
        cli.main(
            [fn, "--eps", "0.05,0.2", "--out", str(tmp_path / "b"), "--clusters", "3", "--ids", fi, "--keep", "easy"]
        )
        == 0
    )
    assert cli.main([fn, "--eps", "0.05,0.2", "--out", str(tmp_path / "c"), "--clusters", "3", "--keep", "easy"]) == 0
    for e in EPS:
        a = _read(str(tmp_path / "a"), e, "removed_ids")
        b = _read(str(tmp_path / "b"), e, "removed_ids")
        c = _read(str(tmp_path / "c"), e, "removed_ids")  # no ids: 0-based row numbers
        assert a["id"] == b["id"] and a["duplicate_of"] == b["duplicate_of"]
        assert sorted(a["id"]) == sorted(ids[c["id"]].tolist())
        assert isinstance(c["id"][0], int)


def _bad_cases(tmp_path):
    x, ids = _corpus(n=240), _ids(240)
    cases = []
    f = tmp_path / "latin1.txt"
    f.write_bytes("first line\nsecond\ncaf\xe9 au lait\n".encode("latin-1"))
    cases.append(([str(f)], "latin1.txt: line 3 (row 2) is not valid UTF-8"))
    dup = ids.copy()
    dup[7] = dup[3]
    fq = str(tmp_path / "dup.parquet")
    _parquet(fq, x, dup)
    cases.append(([fq], f"dup.parquet: row 7 repeats the id '{ids[3]}' of row 3"))
    xn = x.copy()
    xn[5, 2] = np.nan
    fn = str(tmp_path / "nan.npy")
    np.save(fn, xn)
    cases.append(([fn], "nan.npy: row 5 is not finite"))
    fp = str(tmp_path / "nanrow.parquet")
    _parquet(fp, xn, ids)
    cases.append(([fp], "nanrow.parquet: row 5 is not finite"))
    fok = str(tmp_path / "ok.npy")
    np.save(fok, x)
    fi = tmp_path / "short_ids.txt"
    fi.write_text("\n".join(ids[:239]) + "\n")
    cases.append(([fok, "--ids", str(fi)], "short_ids.txt: 239 ids for the 240 rows"))
    fw = str(tmp_path / "w.parquet")
    _parquet(fw, x, ids)
    cases.append(([fw, "--column", "vector"], "w.parquet: no embedding column 'vector'"))
    cases.append(([fw, "--column", "id"], "w.parquet: column 'id' has type string"))
    cases.append(([fw, "--ids", "name"], "w.parquet: no id column 'name'"))
    pq.write_table(
        pa.table({"embedding": pa.array([[1.0, 2.0], [1.0]], pa.list_(pa.float32()))}), tmp_path / "rag.parquet"
    )
    cases.append(([str(tmp_path / "rag.parquet")], "rag.parquet: row 1 of 'embedding' has 1 numbers"))
    fj = tmp_path / "docs.jsonl"
    fj.write_text('{"id": 1, "text": "a"}\n{"id": 2, "body": "b"}\n')
    cases.append(([str(fj)], "docs.jsonl: line 2 (row 1) has no field 'text'"))
    fj2 = tmp_path / "dupid.jsonl"
    fj2.write_text('{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\n{"id": 1, "text": "c"}\n')
    cases.append(([str(fj2)], "dupid.jsonl: row 2 repeats the id 1 of row 0"))
    cases.append(([fok, "--eps", "0.1,2.5"], "--eps: every ε must be in (0, 2)"))
    cases.append(([str(tmp_path / "e.csv")], "e.csv: unknown format"))
    os.makedirs(tmp_path / "folder.npy")
    cases.append(([str(tmp_path / "folder.npy")], "folder.npy: is a directory; expected a .npy"))
    return cases


def test_bad_inputs_one_line_exit_2_nothing_left(tmp_path, capsys):
    for k, (args, msg) in enumerate(_bad_cases(tmp_path)):
        out = tmp_path / f"out{k}"
        if "--eps" not in args:
            args = [*args, "--eps", "0.1"]
        assert cli.main([*args, "--out", str(out), "--clusters", "2"]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, (msg, err)
        assert not os.path.exists(out), args


@pytest.mark.slow
@pytest.mark.skipif(not __import__("dedup.text").text.extra_available(), reason="the [dedup] extra is not installed")
def test_jsonl_texts_with_ids(tmp_path, capsys):
    from dedup import text

    lines = text.read_lines(text.builtin_path())
    groups = text.builtin_groups(len(lines))
    f = tmp_path / "docs.jsonl"
    with open(f, "w", encoding="utf-8") as fh:
        for i, t in enumerate(lines):
            fh.write(json.dumps({"url": f"https://example.org/{i}", "body": t}) + "\n")
    out = str(tmp_path / "o")
    args = [str(f), "--eps", "0.25", "--out", out, "--clusters", "6", "--ids", "url", "--text-field", "body"]
    assert cli.main(args) == 0
    rem = _read(out, 0.25, "removed_ids")
    assert rem["id"] and all(v.startswith("https://example.org/") for v in rem["id"])
    for r, d in zip(rem["id"], rem["duplicate_of"], strict=True):  # every removal is a hand-labelled paraphrase
        i, j = int(r.rsplit("/", 1)[1]), int(d.rsplit("/", 1)[1])
        assert groups[i] >= 0 and groups[i] == groups[j]


def _summary(out):
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def test_out_holding_another_inputs_run_is_refused_unless_overwrite(tmp_path, capsys):
    """A second input into the same --out exits 2 naming --out and leaves the first run as it was; --overwrite
    replaces it, and no eps folder of the first run (other thresholds) is left beside the new ones. The same input
    and arguments again is a rerun, accepted."""
    fa, fb = str(tmp_path / "a.npy"), str(tmp_path / "b.npy")
    np.save(fa, _corpus(n=120, seed=2))
    np.save(fb, _corpus(n=120, seed=3))
    out = str(tmp_path / "o")
    args_a = [fa, "--eps", "0.05,0.2", "--out", out, "--clusters", "2"]
    assert cli.main(args_a) == 0
    before = sorted(os.listdir(out))
    assert cli.main(args_a) == 0  # the same run again
    capsys.readouterr()
    assert cli.main([fb, "--eps", "0.1", "--out", out, "--clusters", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out:" in err and "another input" in err and "--overwrite" in err
    assert sorted(os.listdir(out)) == before and _summary(out)["input"] == os.path.abspath(fa)
    assert cli.main([fa, "--eps", "0.1", "--out", out, "--clusters", "2"]) == 2  # same input, other eps
    assert "other parameters" in capsys.readouterr().err
    assert cli.main([fb, "--eps", "0.1", "--out", out, "--clusters", "2", "--overwrite"]) == 0
    assert sorted(os.listdir(out)) == ["eps=0.1", "summary.json"]
    assert _summary(out)["input"] == os.path.abspath(fb)


def test_verbose_log_names_only_paths_that_remain(tmp_path, caplog):
    """-v logs progress; every file or folder a log line names exists after the run (the work folder, removed at
    the end, is never named)."""
    import logging as py_logging
    import re

    f = str(tmp_path / "c.npy")
    np.save(f, _corpus(n=120))
    out = str(tmp_path / "o")
    with caplog.at_level(py_logging.INFO):
        assert cli.main([f, "--eps", "0.1", "--out", out, "--clusters", "2", "-v"]) == 0
    named = [p for m in caplog.messages for p in re.findall(re.escape(str(tmp_path)) + r"[^\s,;:'\")]*", m)]
    assert any(p.rstrip(".") == os.path.abspath(out) for p in named)  # the outputs are named
    missing = [p for p in named if not os.path.exists(p.rstrip("."))]
    assert not missing, missing
