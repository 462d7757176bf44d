"""Mutation testing: change one operator, constant or statement at a time and see whether a test fails.

    python tools/mutation.py                          # every target, all mutants
    python tools/mutation.py session framing          # some targets
    python tools/mutation.py protocol --budget 600    # stop a target after 600 s (a seeded random sample)
    python tools/mutation.py operators --jobs 2       # two mutants at a time (two copies of the project)
    python tools/mutation.py framing --list           # print the mutants, run nothing
    python tools/mutation.py session --only machine.py:195 machine.py:301   # some lines' mutants only

A mutant is *killed* when its tests fail (or hang past the timeout), and *survives* when they pass:
then either a test is missing, or the mutant is equivalent to the original (a change nobody can
observe). The survivors are printed as ``file:line  original -> mutant`` for a person to judge.

How: the project (``rxibkr``, ``tests``, the configuration) is copied into a temporary directory once
per job, and the mutated files are read once at the start (editing the working tree during a run
changes nothing in it); each mutant is the source file parsed, changed at one node of its syntax
tree, unparsed and written into the copy; then ``python -m pytest -x`` runs the target's own tests
in the copy (the copy's working directory comes first on ``sys.path``, before the editable install).
Each source file first runs its closest test file and only a survivor there runs the target's whole
test set. No byte code is written (``PYTHONDONTWRITEBYTECODE``), so a same-size mutant can never
reuse a stale ``.pyc``. The mutation operators:

- comparisons: ``==``/``!=``, ``<``/``<=``, ``>``/``>=``, ``in``/``not in``, ``is``/``is not``
- arithmetic and bitwise operators (also in ``+=``): ``+``/``-``, ``*``/``/``, ``//``, ``%``,
  ``<<``/``>>``, ``&``/``|``/``^``
- ``and``/``or``; one operand of ``and``/``or`` dropped; ``not x`` -> ``x``; ``-x`` -> ``x``
- constants: an integer ``n`` -> ``n + 1``, a float ``x`` -> ``x + 1``, ``True``/``False``, a string
  ``s`` -> ``"XX" + s + "XX"`` (not docstrings, f-strings, log messages, exception messages)
- ``return x`` -> ``return None``; a call statement, a bare ``return``, ``break`` or ``continue``
  -> ``pass``

Not mutated: type annotations (never evaluated with ``from __future__ import annotations``),
``__all__``, ``if TYPE_CHECKING:`` blocks, docstrings, log and exception messages, the name string
of ``TypeVar("T")`` (and ``ParamSpec``, ``TypeVarTuple``, ``NewType``).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    """Source files to mutate (optionally only some functions) and the tests that must catch it."""

    files: tuple[str, ...]
    tests: tuple[str, ...]
    first: dict[str, tuple[str, ...]] = field(default_factory=dict)  # file -> its closest tests
    functions: tuple[str, ...] = ()  # qualified names; empty: the whole file


TARGETS: dict[str, Target] = {
    "protocol": Target(
        files=(
            "rxibkr/protocol/decode.py",
            "rxibkr/protocol/fields.py",
            "rxibkr/protocol/keys.py",
            "rxibkr/protocol/payloads.py",
            "rxibkr/protocol/requests.py",
        ),
        tests=("tests/protocol",),
        first={
            "rxibkr/protocol/decode.py": ("tests/protocol/test_protocol_decode.py",),
            "rxibkr/protocol/fields.py": ("tests/protocol/test_protocol_fields.py",),
            "rxibkr/protocol/keys.py": ("tests/protocol/test_protocol_keys.py",),
            "rxibkr/protocol/payloads.py": ("tests/protocol/test_protocol_payloads.py",),
            "rxibkr/protocol/requests.py": ("tests/protocol/test_protocol_requests.py",),
        },
    ),
    "session": Target(
        files=("rxibkr/session/machine.py", "rxibkr/session/registry.py", "rxibkr/session/events.py"),
        tests=("tests/session",),
    ),
    "framing": Target(
        files=("rxibkr/io/transport.py",),
        # the framing tests run over both readers (C accelerator, pure Python); the batch hook's tests
        tests=(
            "tests/io/test_framing.py",
            "tests/io/test_accelerator.py",
            "tests/transport/test_batch_end.py",
        ),
        functions=(
            "_valid_close_code",
            "_violation",
            "_fail",
            "_closed_by_server",
            "_send_close",
            "_WebSocketConnection._read_loop",
        ),
    ),
    "operators": Target(
        files=("rxibkr/streams/operators.py",),
        tests=(
            "tests/streams/test_operators.py",
            "tests/streams/test_operators_edges.py",
            "tests/streams/test_streams_virtual.py",
            "tests/streams/test_operators_no_lock.py",
        ),
        first={
            "rxibkr/streams/operators.py": (
                "tests/streams/test_operators.py",
                "tests/streams/test_operators_edges.py",
            )
        },
    ),
}

# The server of a workspace: reads one JSON request a line, forks a child that runs pytest.main,
# answers its exit code (None after a timeout: the child is killed).
SERVER = r"""
import json, os, signal, sys, time
sys.path.insert(0, os.getcwd())
import pytest, reactivex, websocket, hypothesis  # warm, shared by every child; never rxibkr
try:
    import aiohttp, trustme  # the simulator's
except ImportError:
    pass
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        try:
            code = int(pytest.main(request["args"]))
        except BaseException:
            code = 3
        os._exit(code)
    deadline = time.monotonic() + request["timeout"]
    code = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.01)
    else:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    sys.stdout.write(json.dumps({"code": code}) + "\n")
    sys.stdout.flush()
"""

COPY = ("rxibkr", "tests", "benchmarks", "pyproject.toml", "setup.cfg")
TYPING_NAMES = {"TypeVar", "ParamSpec", "TypeVarTuple", "NewType"}
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
COMPARE_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.Div,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitOr,
    ast.Pow: ast.Mult,
}


@dataclass(frozen=True)
class Mutant:
    file: str
    index: int  # position of the node in ast.walk order
    kind: str
    line: int
    description: str

    def label(self) -> str:
        return f"{self.file}:{self.line}  {self.description}"


def _symbol(op: ast.AST) -> str:
    return {
        ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
        ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+",
        ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
        ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
        ast.Pow: "**", ast.And: "and", ast.Or: "or",
    }.get(type(op), type(op).__name__)  # fmt: skip


def _excluded(tree: ast.Module, functions: tuple[str, ...]) -> tuple[set[int], set[int]]:
    """ids of nodes never mutated, and ids of nodes inside the selected functions (all if none)."""
    skip: set[int] = set()
    inside: set[int] = set()

    def mark(node: ast.AST, into: set[int]) -> None:
        for sub in ast.walk(node):
            into.add(id(sub))

    def visit(node: ast.AST, qual: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = qual
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{qual}.{child.name}" if qual else child.name
                if not functions or name in functions:
                    mark(child, inside)
                for deco in child.decorator_list:
                    mark(deco, skip)
                if not isinstance(child, ast.ClassDef):
                    for arg in (*child.args.args, *child.args.kwonlyargs, *child.args.posonlyargs):
                        if arg.annotation is not None:
                            mark(arg.annotation, skip)
                    for star in (child.args.vararg, child.args.kwarg):
                        if star is not None and star.annotation is not None:
                            mark(star.annotation, skip)
                    if child.returns is not None:
                        mark(child.returns, skip)
            body = getattr(child, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
                if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                    mark(body[0], skip)  # a docstring
            if isinstance(child, ast.Expr) and isinstance(child.value, ast.Constant):
                mark(child, skip)  # a bare string: an attribute's docstring
            if isinstance(child, ast.AnnAssign):
                mark(child.annotation, skip)
                if isinstance(child.target, ast.Name) and child.value is None:
                    mark(child, skip)
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                mark(child, skip)
            if isinstance(child, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in ("__all__", "__slots__") for t in child.targets
            ):
                mark(child, skip)
            if isinstance(child, ast.Raise) and child.exc is not None:
                for sub in ast.walk(child.exc):
                    if isinstance(sub, ast.Constant | ast.JoinedStr):
                        mark(sub, skip)
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                if child.func.attr in LOG_METHODS:
                    for message_arg in child.args:
                        mark(message_arg, skip)
            if isinstance(child, ast.JoinedStr):
                mark(child, skip)
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Name) and child.args:
                if child.func.id in TYPING_NAMES:
                    mark(child.args[0], skip)  # the name a TypeVar repeats: never read
            if isinstance(child, ast.ImportFrom | ast.Import):
                mark(child, skip)
            visit(child, name)

    if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant):
        mark(tree.body[0], skip)  # the module's docstring
    visit(tree, "")
    if not functions:
        inside = {id(n) for n in ast.walk(tree)}
    return skip, inside


def mutants_of(file: str, functions: tuple[str, ...] = (), source: str | None = None) -> list[Mutant]:
    if source is None:
        source = (ROOT / file).read_text()
    tree = ast.parse(source)
    skip, inside = _excluded(tree, functions)
    found: list[Mutant] = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip or id(node) not in inside:
            continue
        line = getattr(node, "lineno", 0)
        for kind, description in _kinds(node):
            found.append(Mutant(file, index, kind, line, description))
    return found


def _kinds(node: ast.AST) -> Iterator[tuple[str, str]]:
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in COMPARE_SWAP:
                yield f"cmp{i}", f"{_symbol(op)} -> {_symbol(COMPARE_SWAP[type(op)]())}"
    elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in BINOP_SWAP:
        yield "binop", f"{_symbol(node.op)} -> {_symbol(BINOP_SWAP[type(node.op)]())}"
    elif isinstance(node, ast.BoolOp):
        yield "boolop", f"{_symbol(node.op)} -> {'or' if isinstance(node.op, ast.And) else 'and'}"
        for i, condition in enumerate(node.values):  # one condition dropped: `a or b` -> `a`
            yield f"drop{i}", f"{_symbol(node.op)}: drop {ast.unparse(condition):.40}"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        yield "unary", f"{'not ' if isinstance(node.op, ast.Not) else '-'}x -> x"
    elif isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            yield "const", f"{value} -> {not value}"
        elif isinstance(value, int | float):
            yield "const", f"{value!r} -> {value + 1!r}"
        elif isinstance(value, str):
            yield "const", f"{value!r:.40} -> 'XX...XX'"
    elif isinstance(node, ast.Return) and node.value is not None:
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            yield "return", f"return {ast.unparse(node.value):.40} -> return None"
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call | ast.Await):
        yield "delete", f"{ast.unparse(node.value):.50} -> pass"
    elif (isinstance(node, ast.Return) and node.value is None) or isinstance(node, ast.Break | ast.Continue):
        yield "delete", f"{ast.unparse(node)} -> pass"


def apply(mutant: Mutant, source: str) -> str:
    """``source`` (the file the mutant was found in) with the mutant applied."""
    tree = ast.parse(source)
    parents: dict[int, tuple[ast.AST, str, int | None]] = {}
    nodes = list(ast.walk(tree))
    for parent in nodes:
        for name, value in ast.iter_fields(parent):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        parents[id(item)] = (parent, name, i)
            elif isinstance(value, ast.AST):
                parents[id(value)] = (parent, name, None)
    node = nodes[mutant.index]

    def replace(new: ast.AST) -> None:
        parent, name, i = parents[id(node)]
        ast.copy_location(new, node)
        if i is None:
            setattr(parent, name, new)
        else:
            getattr(parent, name)[i] = new

    kind = mutant.kind
    if kind.startswith("cmp"):
        assert isinstance(node, ast.Compare)
        i = int(kind[3:])
        node.ops[i] = COMPARE_SWAP[type(node.ops[i])]()
    elif kind == "binop":
        assert isinstance(node, ast.BinOp | ast.AugAssign)
        node.op = BINOP_SWAP[type(node.op)]()
    elif kind == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind.startswith("drop"):
        assert isinstance(node, ast.BoolOp)
        rest = [v for i, v in enumerate(node.values) if i != int(kind[4:])]
        replace(rest[0] if len(rest) == 1 else ast.BoolOp(op=node.op, values=rest))
    elif kind == "unary":
        assert isinstance(node, ast.UnaryOp)
        replace(node.operand)
    elif kind == "const":
        assert isinstance(node, ast.Constant)
        value = node.value
        if isinstance(value, bool):
            node.value = not value
        elif isinstance(value, int | float):
            node.value = value + 1
        elif isinstance(value, str):  # the only other constant mutants() yields
            node.value = f"XX{value}XX"
    elif kind == "return":
        assert isinstance(node, ast.Return)
        node.value = ast.Constant(None)
    elif kind == "delete":
        replace(ast.Pass())
    return ast.unparse(ast.fix_missing_locations(tree))


@dataclass
class Result:
    mutant: Mutant
    killed: bool
    seconds: float
    how: str  # "failed", "timeout", "survived", "compile error"


class Workspace:
    """One copy of the project: mutants are written into it one at a time."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rxibkr-mutation-"))
        for name in COPY:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, self.dir / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif src.exists():
                shutil.copy2(src, self.dir / name)
        self.sources = sources  # the mutated files as read at the start
        for file, source in sources.items():
            (self.dir / file).write_text(source)
        self.server: subprocess.Popen[str] | None = None

    def pytest(self, tests: tuple[str, ...], timeout: float) -> tuple[bool, str]:
        """Run pytest in the copy: a child forked from a warm server (pytest and the third-party
        packages already imported, ``rxibkr`` never), so each run pays neither the interpreter's
        start nor those imports."""
        if self.server is None or self.server.poll() is not None:
            self.server = subprocess.Popen(
                [sys.executable, "-c", SERVER],
                cwd=self.dir,
                env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0"),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        assert self.server.stdin is not None and self.server.stdout is not None
        # one process per mutant (no pytest-xdist workers: the project's addopts ask for them)
        args = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts="]
        args += ["--timeout", str(max(10, int(timeout)))]
        args += tests
        self.server.stdin.write(json.dumps({"args": args, "timeout": timeout}) + "\n")
        self.server.stdin.flush()
        answer = self.server.stdout.readline()
        if not answer:
            raise RuntimeError("the mutation server died")
        code = json.loads(answer)["code"]
        if code == 0:
            return True, "survived"
        if code is None:
            return False, "timeout"
        if code in (2, 3, 4):  # interrupted, internal error, usage error: e.g. a broken import
            return False, "error"
        return False, "failed"

    def run(self, mutant: Mutant, target: Target, timeout: float) -> Result:
        path = self.dir / mutant.file
        original = self.sources[mutant.file]
        start = time.monotonic()
        try:
            source = apply(mutant, original)
            compile(source, mutant.file, "exec")
        except (SyntaxError, ValueError, AssertionError):
            return Result(mutant, True, 0.0, "compile error")
        try:
            path.write_text(source)
            first = target.first.get(mutant.file)
            if first:
                passed, how = self.pytest(first, timeout)
                if not passed:
                    return Result(mutant, True, time.monotonic() - start, how)
            passed, how = self.pytest(target.tests, timeout)
            return Result(mutant, not passed, time.monotonic() - start, how)
        finally:
            path.write_text(original)

    def remove(self) -> None:
        if self.server is not None:
            assert self.server.stdin is not None
            self.server.stdin.close()
            self.server.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def baseline(workspace: Workspace, target: Target) -> float:
    start = time.monotonic()
    passed, how = workspace.pytest(target.tests, 600)
    if not passed:
        raise SystemExit(f"the tests fail without any mutant ({how}): {' '.join(target.tests)}")
    return time.monotonic() - start


def _selected(mutant: Mutant, only: list[str]) -> bool:
    """``only``: ``FILE:LINE`` items (FILE: the end of the path, e.g. ``machine.py:195``); empty: all."""
    for item in only:
        file, _, line = item.rpartition(":")
        if mutant.file.endswith(file) and str(mutant.line) == line:
            return True
    return not only


def run_target(
    name: str,
    jobs: int,
    budget: float | None,
    seed: int,
    say: Callable[[str], None],
    only: list[str] | None = None,
) -> tuple[list[Result], int, float]:
    target = TARGETS[name]
    sources = {f: (ROOT / f).read_text() for f in target.files}
    mutants = [m for f in target.files for m in mutants_of(f, target.functions, sources[f])]
    mutants = [m for m in mutants if _selected(m, only or [])]
    random.Random(seed).shuffle(mutants)  # under a budget the mutants run are a fair sample
    workspaces = [Workspace(sources) for _ in range(jobs)]
    start = time.monotonic()
    try:
        took = baseline(workspaces[0], target)
        timeout = max(30.0, took * 4)
        say(f"[{name}] {len(mutants)} mutants; the tests take {took:.1f} s without one")
        results: list[Result] = []
        lock = threading.Lock()
        free = list(workspaces)

        def one(mutant: Mutant) -> None:
            if budget is not None and time.monotonic() - start > budget:
                return
            with lock:
                workspace = free.pop()
            try:
                result = workspace.run(mutant, target, timeout)
            finally:
                with lock:
                    free.append(workspace)
            with lock:
                results.append(result)
                if not result.killed:
                    say(f"  survived: {mutant.label()}")
                if len(results) % 50 == 0:
                    killed = sum(r.killed for r in results)
                    say(f"  [{name}] {len(results)}/{len(mutants)} run, {killed} killed")

        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(one, mutants))
        return results, len(mutants), time.monotonic() - start
    finally:
        for workspace in workspaces:
            workspace.remove()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at a time (default 1)")
    parser.add_argument("--budget", type=float, help="seconds per target; a random sample past it")
    parser.add_argument("--seed", type=int, default=0, help="order of the mutants (default 0)")
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="FILE:LINE",
        help="only the mutants of these lines (e.g. machine.py:195): to re-check survivors, not a score",
    )
    parser.add_argument("--min-score", type=float, default=0.0, help="exit 1 below this score (percent)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still removes the copies
    names = args.targets or list(TARGETS)
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r}: choose from {', '.join(TARGETS)}")

    def say(text: str) -> None:
        print(text, flush=True)

    if args.list:
        for name in names:
            target = TARGETS[name]
            for file in target.files:
                for mutant in mutants_of(file, target.functions):
                    if not _selected(mutant, args.only):
                        continue
                    say(f"{name}  {mutant.label()}")
        return 0
    status = 0
    summary: list[str] = []
    for name in names:
        results, total, seconds = run_target(name, args.jobs, args.budget, args.seed, say, args.only)
        killed = sum(r.killed for r in results)
        score = 100.0 * killed / len(results) if results else 0.0
        survivors = sorted((r.mutant for r in results if not r.killed), key=lambda m: (m.file, m.line))
        say(f"[{name}] survivors ({len(survivors)}):")
        for mutant in survivors:
            say(f"  {mutant.label()}")
        sampled = "" if len(results) == total else f" (a sample: {len(results)} of {total})"
        line = f"{name}: {killed}/{len(results)} killed = {score:.1f} %{sampled} in {seconds:.0f} s"
        summary.append(line)
        if score < args.min_score:
            status = 1
    say("\n".join(["", "mutation score", *summary]))
    return status


if __name__ == "__main__":
    sys.exit(main())
