"""The --config flag of every package's command line: resolving its path, loading it, diagnosing a failed parse in
one line, and the text of `--help` (the config's fields with their values and the config file's comments)."""

from __future__ import annotations

import ast
import difflib
import importlib.util
import io
import os
import textwrap
import tokenize
from typing import Any

from ml_collections import ConfigDict

# The directory holding the packages (config paths relative to it work from any working directory).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _package_of(experiment: Any) -> str:
    name = getattr(experiment, "__name__", None) or type(experiment).__module__
    return name.split(".")[0]


def config_name(spec: str) -> str:
    """'icl/configs/default.py:smoke' -> 'default_smoke'."""
    path, _, arg = spec.partition(":")
    stem = os.path.splitext(os.path.basename(path))[0]
    return f"{stem}_{arg.replace(',', '_').replace('=', '-')}" if arg else stem


def _short(err: BaseException) -> str:
    """The informative last line of an error whose message may hold a whole traceback, without an `XError:` prefix."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    if not lines:
        return type(err).__name__
    if len(lines) > 1 and any(ln.startswith("Traceback") for ln in lines):
        text = lines[-1]
    else:
        text = " ".join(lines)
    head, sep, rest = text.partition(": ")
    if sep and head.isidentifier() and (head.endswith("Error") or head.endswith("Exception")):
        text = rest
    return text


_HELP_ARGS = ("-h", "--help", "-help", "--helpshort", "-?")


def _config_arg(argv: list[str]) -> tuple[int, str] | None:
    """(index, value) of the last --config argument (`--config=X` or `--config X`), or None."""
    found = None
    for i, a in enumerate(argv[1:], start=1):
        if a.startswith("--config="):
            found = (i, a.split("=", 1)[1])
        elif a == "--config" and i + 1 < len(argv):
            found = (i, argv[i + 1])
    return found


def resolve_config_path(spec: str) -> str:
    """The config spec with its file path made absolute when the path is relative to the project, not to the working
    directory (so `--config=icl/configs/default.py` works from any directory). Other specs are returned as given."""
    path, sep, arg = spec.partition(":")
    if path and not os.path.isabs(path) and not os.path.exists(path) and os.path.exists(os.path.join(ROOT, path)):
        return os.path.join(ROOT, path) + sep + arg
    return spec


def _with_resolved_config(argv: list[str]) -> list[str]:
    found = _config_arg(argv)
    if found is None:
        return argv
    i, spec = found
    argv = list(argv)
    if argv[i] == "--config":
        argv[i + 1] = resolve_config_path(spec)
    else:
        argv[i] = "--config=" + resolve_config_path(spec)
    return argv


class _LoadError(Exception):
    pass


def load_config(spec: str) -> ConfigDict:
    """Loads `path[:variant]` as ml_collections' --config does (`get_config(variant)`); errors are _LoadError with
    one informative line."""
    path, sep, arg = resolve_config_path(spec).partition(":")
    if not os.path.isfile(path):
        places = dict.fromkeys([os.getcwd(), ROOT])
        where = "" if os.path.isabs(path) else f" (looked in {' and '.join(places)})"
        raise _LoadError(f"--config={spec}: no such file{where}")
    try:
        module_spec = importlib.util.spec_from_file_location("_help_config", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module.get_config(arg) if sep else module.get_config()
    except Exception as e:  # noqa: BLE001 - whatever the config file raised, as one line
        raise _LoadError(f"--config={spec}: {_short(e)}") from None


def _flat(config: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) for every leaf of a ConfigDict, in the config's order."""
    out = []
    for k, v in config.items():
        if isinstance(v, ConfigDict):
            out += _flat(v, prefix + k + ".")
        else:
            out.append((prefix + k, v))
    return out


def _node(config: Any, key: str) -> tuple[bool, str, list[str]]:
    """Whether dotted `key` exists in `config`; if not, the part that does not and that level's field names."""
    node = config
    for i, part in enumerate(key.split(".")):
        if not isinstance(node, ConfigDict) or part not in node:
            fields = list(node.keys()) if isinstance(node, ConfigDict) else []
            return False, ".".join(key.split(".")[: i + 1]), fields
        node = node[part]
    return True, key, []


def config_comments(path: str) -> tuple[str, dict[str, str]]:
    """The module docstring of a config file and {dotted field: comment} from its `c.field = value  # comment` lines
    (a comment on the line or in the comment lines just above; the first assignment of a field that has one wins),
    in the order the fields are first assigned in the file."""
    with open(path) as f:
        source = f.read()
    tree = ast.parse(source)
    doc = ast.get_docstring(tree) or ""
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    fields: dict[str, str] = {}
    assigns = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Assign)), key=lambda n: n.lineno)
    for node in assigns:
        for target in node.targets:
            parts = []
            while isinstance(target, ast.Attribute):
                parts.append(target.attr)
                target = target.value
            if not parts or not isinstance(target, ast.Name):
                continue
            key = ".".join(reversed(parts))
            text = [comments[ln] for ln in range(node.lineno, node.end_lineno + 1) if ln in comments]
            above, ln = [], node.lineno - 1
            while ln >= 1 and lines[ln - 1].strip().startswith("#"):
                above.insert(0, comments.get(ln, ""))
                ln -= 1
            comment = "; ".join(part for part in (" ".join(above).strip(), " ".join(text).strip()) if part)
            if comment and not fields.get(key):
                fields[key] = comment
            fields.setdefault(key, "")
    return doc, fields


def help_text(experiment: Any, spec: str | None, config: ConfigDict | None = None) -> str:
    """What `--help` prints: usage, the config file's docstring, every field with its value and comment, the flags."""
    pkg = _package_of(experiment)
    spec = spec or f"{pkg}/configs/default.py"
    if config is None:
        config = load_config(spec)
    path = resolve_config_path(spec).partition(":")[0]
    doc, comments = config_comments(path)
    out = [
        f"usage: python -m {pkg}.main --config=FILE[:variant] [--workdir=DIR] [--config.FIELD=VALUE ...]",
        "",
    ]
    if doc:
        out += [f"{spec}:", *("  " + ln if ln else "" for ln in doc.splitlines()), ""]
    out.append(f"config fields of {spec} (set any with --config.FIELD=VALUE):")
    order = {k: i for i, k in enumerate(comments)}
    items = sorted(_flat(config), key=lambda kv: order.get(kv[0], len(order)))
    width = min(max((len(f"{k} = {v!r}") for k, v in items), default=0), 48)
    for key, value in items:
        text = f"{key} = {value!r}"
        comment = comments.get(key, "")
        if not comment:
            out.append(f"  {text}")
            continue
        first = f"  {text:<{width}}  # "
        wrapped = textwrap.wrap(comment, width=max(118 - len(first), 40)) or [""]
        out.append(first + wrapped[0])
        out += [" " * (len(first) - 2) + "# " + w for w in wrapped[1:]]
    name = config_name(spec)
    out += [
        "",
        "flags:",
        "  --config=FILE[:variant]  the config file and variant (the file's docstring above names its variants)",
        f"  --workdir=DIR            output directory (default runs/{pkg}/{name}); the same command resumes a run",
        "  --jax_distributed        join a multi-host run (see the README); also --coordinator_address,",
        "                           --num_processes, --process_id",
        "  -h, --help               this text; --helpfull lists every absl flag",
    ]
    return "\n".join(out) + "\n"


def _type_word(value: Any) -> str:
    if isinstance(value, bool):
        return "True or False"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, (tuple, list)):
        return "a tuple"
    return type(value).__name__


def _diagnose(argv: list[str], err: BaseException) -> str:
    """One line for a failed flag/config parse: the file that did not load, the unknown field (with the closest
    names), the value that could not be read as the field's type, or the flags library's own message."""
    found = _config_arg(argv)
    base = None
    if found is not None:
        try:
            base = load_config(found[1])
        except _LoadError as e:
            return str(e)
    if base is not None:
        for i, a in enumerate(argv[1:], start=1):
            if not (a.startswith("--config.") or a.startswith("--noconfig.")):
                continue
            key, _, value = a.split(".", 1)[1].partition("=")
            if not _ and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                value = argv[i + 1]
            ok, missing, fields = _node(base, key)
            if not ok:
                close = difflib.get_close_matches(missing.split(".")[-1], fields, n=3)
                parent = missing.rpartition(".")[0]
                hint = (
                    " (did you mean " + " or ".join((parent + "." if parent else "") + c for c in close) + "?)"
                    if close
                    else ""
                )
                what = "no such field" if missing == key else f"{missing} is not a field"
                return f"{key}: {what} in {found[1]}{hint}"
            text = str(err)
            if f"--config.{key}" in text and ("convert" in text or "invalid literal" in text or "argument" in text):
                old = dict(_flat(base)).get(key)
                return f"{key}: cannot read {value!r} as {_type_word(old)} (the config has {old!r})"
    return _short(err)
