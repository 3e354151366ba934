"""Reading a submission and rebuilding it from the source: the student controls only their code.

:func:`find_notebooks` matches the files of a submission folder with the release's notebooks
(renamed, missing, extra and malformed files are reported). :func:`rebuild` makes the notebook
that is graded: every cell nbgrader tracks comes from the release in the release's order and with
its metadata; a solution cell takes only the *source* of the student's cell with the same
``grade_id``; the student's own untracked cells (scratch work) keep their place. :func:`scan`
flags code that reaches for the grader's machinery.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = ["Malformed", "Rebuilt", "find_notebooks", "protected_names", "read_cells", "rebuild", "scan",
           "solution_sources", "student_id"]

MAX_NOTEBOOK_BYTES = 64 << 20  # stored figures are dropped unread, but the file is parsed whole
MAX_CELL_BYTES = 1 << 20  # a solution is a few KiB; a larger cell is not code a person wrote
MAX_DEPTH = 3  # folders below the student's folder searched for notebooks (LMS downloads nest)
IGNORED_FOLDERS = {".ipynb_checkpoints", "__MACOSX"}
# A student folder's name is the student's id in the gradebook and in file names: any printable
# text (spaces and accents included: Moodle's "Ann Marie_1234_assignsubmission_file_", "josé")
# except what a path, a glob or a shell would read as syntax.
_FORBIDDEN_IN_ID = set('/\\*?[]"<>|`:') | {chr(c) for c in range(32)}
_COPY_SUFFIX = re.compile(r"(?:\s*\(\d+\)|-copy\d*|\s+copy(?:\s+\d+)?)+$", re.I)


class Malformed(ValueError):
    """A submitted file that cannot be read as a notebook."""


def _nbgrader(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def student_id(name: str) -> tuple[str | None, str | None]:
    """``(id, None)`` for a usable student folder name (NFC-normalized), ``(None, why)`` otherwise."""
    normal = unicodedata.normalize("NFC", name)
    if not normal or len(normal) > 128:
        return None, "a student folder name must have 1 to 128 characters"
    if normal != normal.strip() or normal.startswith((".", "-")):
        return None, "a student folder name may not start with '.', '-' or a space, or end with a space"
    bad = sorted(set(normal) & _FORBIDDEN_IN_ID) or [c for c in normal if not c.isprintable()]
    if bad:
        return None, f"a student folder name may not contain {''.join(bad)!r}"
    return normal, None


def _walk(folder: Path, depth: int = 0):
    """(path, problem) for every entry below ``folder``; problem is None for a regular file.
    Symbolic links are reported, never followed; so are pipes, sockets and devices."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        yield folder, f"unreadable folder ({exc.strerror})"
        return
    for path in entries:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            yield path, "symbolic link"
        elif stat.S_ISDIR(mode):
            if path.name in IGNORED_FOLDERS or path.name.startswith("."):
                continue
            if depth + 1 >= MAX_DEPTH:
                yield path, f"folder deeper than {MAX_DEPTH} levels"
                continue
            yield from _walk(path, depth + 1)
        elif stat.S_ISREG(mode):
            yield path, None
        else:
            yield path, "not a regular file"


def _key(path: Path) -> str:
    """A notebook's name with LMS copy markers removed, lower case: ``01_topk (2).IPYNB`` -> ``01_topk``."""
    stem = unicodedata.normalize("NFC", path.name[: -len(".ipynb")])
    return (_COPY_SUFFIX.sub("", stem) or stem).lower()


def solution_sources(cells: list[dict]) -> dict[str, str]:
    """grade_id -> source of the solution cells (first occurrence of each)."""
    out = {}
    for cell in cells:
        meta = _nbgrader(cell)
        if meta.get("solution") and isinstance(meta.get("grade_id"), str):
            out.setdefault(meta["grade_id"], cell["source"])
    return out


def find_notebooks(folder: Path, releases: dict[str, nbformat.NotebookNode]
                   ) -> tuple[dict[str, Path], list[str], list[str]]:
    """Match the notebooks below ``folder`` with the release's notebooks (``{name: notebook}``).

    Returns ``(found, notes, flags)``: ``{release name: path}``, one note per decision (renamed,
    copies, untouched release copies, ignored files) and the reasons an instructor must decide
    (several different notebooks for one name: the newest is graded). Rules, in order:

    * notebooks are searched ``MAX_DEPTH`` folders deep; names match without case and without LMS
      copy markers (``01_topk (1).ipynb``, ``01_topk-Copy1.ipynb``, ``01_topk.IPYNB``);
    * of several candidates, untouched copies of the release are dropped when another exists,
      identical ones count once, the shallowest wins ties;
    * one unmatched notebook where exactly one release notebook is missing (or matched only by an
      untouched copy) is taken as a rename.
    """
    notes, flags = [], []
    by_key = {name[: -len(".ipynb")].lower(): name for name in releases}
    candidates: dict[str, list[Path]] = {name: [] for name in releases}
    unknown = []
    for path, problem in _walk(folder):
        rel = path.relative_to(folder).as_posix()
        if problem:
            notes.append(f"ignored {rel}: {problem}")
        elif rel in EXCHANGE_FILES:
            continue  # nbgrader submit's own files: the time (late work) and the key of the feedback
        elif not path.name.lower().endswith(".ipynb"):
            notes.append(f"ignored extra file {rel}")
        elif _key(path) in by_key:
            candidates[by_key[_key(path)]].append(path)
        else:
            unknown.append(path)
    depth = lambda p: (len(p.relative_to(folder).parts), p.name != p.name.lower(), str(p))  # noqa: E731
    released = {name: solution_sources([{"source": c.source, "metadata": c.metadata} for c in nb.cells])
                for name, nb in releases.items()}
    read: dict[Path, dict | None] = {}

    def sources(path: Path) -> dict | None:
        """The candidate's solution sources (None when malformed), each file read once."""
        if path not in read:
            try:
                read[path] = solution_sources(read_cells(path))
            except Malformed:
                read[path] = None
        return read[path]

    def untouched(path: Path, name: str) -> bool:
        return sources(path) == released[name]

    found = {}
    for name, paths in candidates.items():
        paths = sorted(paths, key=depth)
        if len(paths) > 1:
            work = [p for p in paths if not untouched(p, name)]
            for p in paths:
                if p not in work and work:
                    notes.append(f"ignored {p.relative_to(folder).as_posix()}: an untouched copy of the release")
            work = work or paths[:1]
            distinct = {}
            for p in work:
                distinct.setdefault(json.dumps(sources(p), sort_keys=True) if sources(p) is not None else str(p), p)
            paths = sorted(distinct.values(), key=depth)
            if len(paths) > 1:
                newest = max(paths, key=lambda p: p.stat().st_mtime)
                flags.append(f"{len(paths)} different notebooks for {name} ("
                             + ", ".join(p.relative_to(folder).as_posix() for p in paths)
                             + f"): graded {newest.relative_to(folder).as_posix()}, the newest; check which one was meant")
                paths = [newest]
            elif len(work) > 1:
                notes.append(f"{len(work)} identical copies of {name}: graded {paths[0].relative_to(folder).as_posix()}")
        if paths:
            found[name] = paths[0]
    missing = [name for name in releases if name not in found]
    stand_ins = [name for name in found if untouched(found[name], name)]
    if len(unknown) == 1 and len(missing) + len(stand_ins) == 1:
        name = (missing or stand_ins)[0]
        if name in stand_ins:
            notes.append(f"ignored {found[name].relative_to(folder).as_posix()}: an untouched copy of the release")
        found[name] = unknown.pop()
        missing = [m for m in missing if m != name]
    for name, path in found.items():
        rel = path.relative_to(folder).as_posix()
        if rel != name and f"renamed: graded {rel} as {name}" not in notes:
            notes.append(f"renamed: graded {rel} as {name}")
    notes += [f"missing notebook {name} (graded zero)" for name in missing]
    notes += [f"ignored extra notebook {p.relative_to(folder).as_posix()}" for p in unknown]
    return found, notes, flags


EXCHANGE_FILES = ("timestamp.txt", "submission_secret.txt")  # written by nbgrader submit, kept by collect


def small_file(path: Path, limit: int = 1024) -> bytes | None:
    """The bytes of a regular file of at most ``limit`` bytes (not through a symbolic link, never
    blocking on a pipe), else None: how a submission's small files (``EXCHANGE_FILES``) are read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    return data if len(data) <= limit else None


def read_cells(path: Path) -> list[dict]:
    """The cells of a submitted notebook as ``{"cell_type", "source", "metadata"}`` dicts.

    Only what grading needs is read; outputs are ignored. Raises :class:`Malformed` naming the
    problem (not a regular file, too large, not JSON, nested too deeply, not a notebook, a cell
    without a source or with a source over ``MAX_CELL_BYTES``). Never blocks: a pipe is refused.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        raise Malformed(f"{path.name} cannot be opened ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Malformed(f"{path.name} is not a regular file")
        if info.st_size > MAX_NOTEBOOK_BYTES:
            raise Malformed(f"{path.name} is larger than {MAX_NOTEBOOK_BYTES >> 20} MiB")
        data = handle.read(MAX_NOTEBOOK_BYTES + 1)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise Malformed(f"{path.name} is larger than {MAX_NOTEBOOK_BYTES >> 20} MiB")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Malformed(f"{path.name} is not valid JSON: {str(exc)[:200]}") from None
    except RecursionError:
        raise Malformed(f"{path.name} is nested too deeply to be a notebook") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("nbformat"), int):
        raise Malformed(f"{path.name} is not a Jupyter notebook (no 'nbformat' number)")
    if raw["nbformat"] < 4:
        try:
            raw = nbformat.convert(nbformat.from_dict(raw), 4)
        except Exception as exc:  # noqa: BLE001 - any failure means the same thing here
            raise Malformed(f"{path.name}: cannot convert nbformat {raw['nbformat']} notebook: {str(exc)[:200]}") from None
    cells = raw.get("cells")
    if not isinstance(cells, list):
        raise Malformed(f"{path.name} has no list of cells")
    out = []
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise Malformed(f"{path.name}: cell {i} is not a code, markdown or raw cell")
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise Malformed(f"{path.name}: cell {i} has no text source")
        if len(source.encode("utf-8", "surrogatepass")) > MAX_CELL_BYTES:
            raise Malformed(f"{path.name}: cell {i}'s source is larger than {MAX_CELL_BYTES >> 20} MiB")
        metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        out.append({"cell_type": cell["cell_type"], "source": source, "metadata": metadata})
    return out


@dataclass
class Rebuilt:
    """The notebook to grade, with what was changed to make it.

    ``deleted_tests``: grade_ids of graded cells the student deleted (re-added, graded zero).
    ``notes``: one line per repair, for the report.
    """

    notebook: nbformat.NotebookNode
    deleted_tests: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def rebuild(release: nbformat.NotebookNode, cells: list[dict]) -> Rebuilt:
    """Rebuild a submission from the ``release`` notebook and the student's ``cells``."""
    known = {_nbgrader(c).get("grade_id"): c for c in release.cells if _nbgrader(c).get("grade_id")}
    by_id: dict[str, list[dict]] = {}
    anchored: dict[str | None, list[dict]] = {None: []}
    anchor = None
    notes = []
    for cell in cells:
        gid = _nbgrader(cell).get("grade_id")
        if gid in known:
            by_id.setdefault(gid, []).append(cell)
            anchor = gid
        else:
            if gid is not None:
                notes.append(f"removed nbgrader metadata from an unknown cell {gid!r}")
            scratch = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
                       "raw": nbformat.v4.new_raw_cell}[cell["cell_type"]](cell["source"])
            anchored.setdefault(anchor, []).append(scratch)
    result = Rebuilt(copy.deepcopy(release))
    new_cells = list(anchored[None])
    for cell in release.cells:
        meta = _nbgrader(cell)
        gid = meta.get("grade_id")
        if gid is None:
            continue  # the release's untracked cells are the student's to change: theirs are kept
        mine = by_id.get(gid, [])
        canonical = copy.deepcopy(cell)
        if len(mine) > 1:
            notes.append(f"cell {gid!r} appears {len(mine)} times: the first was graded")
        if meta.get("solution"):
            if mine:
                canonical.source = mine[0]["source"]
                if mine[0]["cell_type"] != cell.cell_type:
                    notes.append(f"cell {gid!r} was changed to {mine[0]['cell_type']}: restored as {cell.cell_type}")
            else:
                notes.append(f"solution cell {gid!r} was deleted: re-added empty")
        elif not mine:
            notes.append(f"cell {gid!r} was deleted: re-added" + (", graded zero" if meta.get("grade") else ""))
            if meta.get("grade"):
                result.deleted_tests.append(gid)
        elif (mine[0]["source"] != cell.source or mine[0]["cell_type"] != cell.cell_type
              or _nbgrader(mine[0]) != meta):
            notes.append(f"cell {gid!r} was changed: restored from the release")
        new_cells.append(canonical)
        new_cells += anchored.get(gid, [])
    for cell in new_cells:
        cell.pop("outputs", None) if cell.cell_type != "code" else cell.update(outputs=[], execution_count=None)
    result.notebook.cells = new_cells
    result.notes = notes
    return result


# What honest solutions to these assignments never need: the grader's machinery, the
# interpreter's hooks, and ways to patch code that the tests call.
_SUSPECT_NAMES = {
    "get_ipython", "IPython", "ipykernel", "jupyter_client", "zmq", "builtins", "__builtins__",
    "inspect", "gc", "ctypes", "In", "Out", "_ih", "_oh", "_i", "_ii", "_iii", "__import__",
    "importlib", "exec", "eval", "compile", "setattr", "delattr", "globals", "vars", "signal",
    "faulthandler", "atexit", "subprocess", "socket", "urllib", "http", "requests", "pty", "multiprocessing",
}
_SUSPECT_ATTRS = {
    "excepthook", "displayhook", "settrace", "setprofile", "_getframe", "history_manager", "set_custom_exc",
    "showtraceback", "custom_exceptions", "__code__", "__globals__", "__builtins__", "f_back", "f_globals",
    "f_locals", "_exit", "kill", "system", "popen", "fork", "__class__", "__dict__", "__subclasses__",
}
_SYS_HARMLESS = {"float_info", "int_info", "maxsize", "version", "version_info", "platform", "byteorder",
                 "getsizeof", "getrecursionlimit", "setrecursionlimit", "float_repr_style", "hash_info", "stdout", "stderr"}
_COMPARISON_DUNDERS = {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__float__",
                       "__int__", "__index__", "__abs__", "__sub__", "__rsub__", "__contains__",
                       "__instancecheck__", "__getattr__", "__getattribute__", "__array__", "__torch_function__"}
_SECRET_WORDS = ("ipynb", "gradebook", "solutions/", "hidden test", "nbgrader", "/proc", "/etc/")


_HISTORY_NAMES = {"In", "Out", "_ih", "_oh", "_i", "_ii", "_iii"}  # IPython's; honest code may bind them itself
_HARMLESS_SETTINGS = ("torch.backends.",)  # e.g. torch.backends.cudnn.deterministic = True
_TYPE_NAME_ATTRS = {"__name__", "__qualname__"}  # x.__class__.__name__ in an error message


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (of the cell, a function or a class)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def _bound_names(tree: ast.AST) -> set[str]:
    """Names the cell binds itself: assignment and loop targets, parameters, imports, definitions."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return bound


def scan(source: str, modules: set[str], names: set[str]) -> list[str]:
    """Reasons to review a student code cell (empty when it looks like an ordinary solution); each
    reason ends with the line that triggered it: ``uses inspect (line 3: import inspect)``.

    ``modules``: modules the release's locked and test cells import (assigning to their
    attributes is flagged anywhere, rebinding them at top level too); ``names``: the helper functions
    and classes those cells define (rebinding one at top level is flagged).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # it fails to run; its tests fail on their own
    lines = source.splitlines()
    reasons: dict[str, int] = {}

    def flag(reason: str, node: ast.AST) -> None:
        reasons.setdefault(reason, getattr(node, "lineno", 1))

    docstrings, bound = _docstrings(tree), _bound_names(tree)
    type_names = {id(n.value) for n in ast.walk(tree)
                  if isinstance(n, ast.Attribute) and n.attr in _TYPE_NAME_ATTRS
                  and isinstance(n.value, ast.Attribute) and n.value.attr == "__class__"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in _SUSPECT_NAMES:
            if not (node.id in _HISTORY_NAMES and node.id in bound):
                flag(f"uses {node.id}", node)
        elif isinstance(node, ast.Attribute) and node.attr in _SUSPECT_ATTRS:
            if id(node) not in type_names:
                flag(f"uses .{node.attr}", node)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "sys"
              and node.attr not in _SYS_HARMLESS):
            flag(f"uses sys.{node.attr}", node)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            root = node
            while isinstance(root, ast.Attribute):
                root = root.value
            target = ast.unparse(node)
            if isinstance(root, ast.Name) and root.id in modules and not target.startswith(_HARMLESS_SETTINGS):
                flag(f"assigns to {target}", node)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imported = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            for m in filter(None, imported):
                if m.split(".")[0] in _SUSPECT_NAMES:
                    flag(f"imports {m}", node)
            if isinstance(node, ast.ImportFrom) and node.module == "sys":
                for a in node.names:
                    if a.name not in _SYS_HARMLESS:
                        flag(f"uses sys.{a.name}", node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in _COMPARISON_DUNDERS:
                    flag(f"class {node.name} defines {item.name}", item)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if any(word in node.value.lower() for word in _SECRET_WORDS):
                flag(f"mentions {node.value[:40]!r}", node)
    for node in tree.body:  # top-level rebinding of what the tests rely on
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            rebound = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            rebound = [node.name]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):  # a module re-imported under its name is fine
            rebound = [a.asname or a.name.split(".")[0] for a in node.names if (a.asname or a.name) in names]
        else:
            rebound = []
        for name in rebound:
            if name in modules | names:
                flag(f"rebinds {name}", node)

    return _located(reasons, lines)


def _located(reasons: dict[str, int], lines: list[str]) -> list[str]:
    """Each reason with the line that triggered it: ``uses inspect (line 3: import inspect)``."""
    def where(line: int) -> str:
        text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        return f"line {line}: {text[:80]}"

    return sorted(f"{reason} ({where(line)})" for reason, line in reasons.items())


def protected_names(release: nbformat.NotebookNode) -> tuple[set[str], set[str]]:
    """(modules imported, functions and classes defined) at top level by the release's locked and test cells."""
    modules, names = set(), set()
    for cell in release.cells:
        meta = _nbgrader(cell)
        if cell.cell_type != "code" or meta.get("solution") or not (meta.get("locked") or meta.get("grade")):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules.update((a.asname or a.name.split(".")[0]) for a in node.names)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)  # test data variables are re-assigned by the tests; helpers are not
    return modules, names


# -- what an assignment forbids ----------------------------------------------------------------------

@dataclass(frozen=True)
class Forbidden:
    """What a solution may not use, from the source notebook's metadata ``cvcourse.forbidden``:
    ``{"modules": [...], "names": [...], "why": "..."}``. ``modules``: imports (and attribute paths
    such as ``torch.nn.functional``) that are flagged; the top-level ones are also emptied in the
    sandbox (so the visible tests must not import them). ``names``: functions and classes flagged when a solution reaches them as an attribute
    or an import (``F.local_response_norm``, ``from torch.optim import SGD``). ``cvlib`` is always
    forbidden."""

    modules: tuple[str, ...] = ("cvlib",)
    names: tuple[str, ...] = ()
    why: str = "write it yourself"

    @classmethod
    def of(cls, source_nb) -> "Forbidden":
        spec = source_nb.metadata.get("cvcourse", {}).get("forbidden", {})
        modules = tuple(dict.fromkeys(["cvlib", *spec.get("modules", [])]))
        return cls(modules, tuple(spec.get("names", [])), spec.get("why", cls.why))

    def sandbox_hidden(self) -> tuple[str, ...]:
        """The installed top-level packages the sandbox empties (never torch itself)."""
        return tuple(m for m in self.modules if "." not in m and m not in ("torch", "numpy", "math"))


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def forbidden_uses(source: str, rules: Forbidden) -> list[str]:
    """Reasons a solution cell uses what the assignment forbids, or imports a module by a computed
    name; each ends with its line, as :func:`scan`'s do."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines, reasons = source.splitlines(), {}

    def hit(module: str) -> str | None:
        return next((m for m in rules.modules if module == m or module.startswith(m + ".")), None)

    def flag(what: str, node: ast.AST) -> None:
        reasons.setdefault(f"uses {what}, which this assignment forbids ({rules.why})", node.lineno)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if hit(alias.name):
                    flag(alias.name, node)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if hit(node.module) or hit(full) or alias.name in rules.names:
                    flag(full, node)
        elif isinstance(node, ast.Attribute):
            dotted = _dotted(node) or ""
            tail = [m.split(".", 1)[1] for m in rules.modules if "." in m]  # torch.nn.functional -> nn.functional
            if node.attr in rules.names:
                flag(dotted or node.attr, node)
            elif any(f".{t}." in f".{dotted}." for t in tail) and isinstance(node.ctx, ast.Load):
                flag(dotted, node)
        elif isinstance(node, ast.Call):
            func = _dotted(node.func) or ""
            if func.split(".")[-1] in ("__import__", "import_module") and node.args:
                arg = node.args[0]
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    reasons.setdefault("imports a module by a computed name", node.lineno)
                elif hit(arg.value):
                    flag(arg.value, node)

    return _located(reasons, lines)
