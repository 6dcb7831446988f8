"""Every module imports on its own in a fresh interpreter, and the package has no import cycle.

The cycle check reads the source (ast) of every module under `tfaesthetic/`, takes
the edges to other `tfaesthetic` modules from module-level and function-level
imports alike (a function-local import still couples two modules), and fails on any
strongly connected component of more than one module, naming its members.
"""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "tfaesthetic")


def _modules():
    names = {}
    for folder, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), ROOT)[:-3].replace(os.sep, ".")
                if rel.endswith(".__init__"):
                    rel = rel[: -len(".__init__")]
                names[rel] = os.path.join(folder, f)
    return names


def _imports(name, path, known):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    is_package = path.endswith("__init__.py")
    out = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                out.add(t)
    return out


def _cycles(graph):
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return comps


def test_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # A package's __init__ re-exporting its submodules is not a cycle with them.
    for name in graph:
        graph[name] = {t for t in graph[name] if not (name.startswith(t + ".") or t.startswith(name + "."))}
    assert _cycles(graph) == []


def test_no_private_name_imported_across_modules():
    modules = _modules()
    bad = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tfaesthetic"):
                bad += [f"{name}: from {node.module} import {a.name}" for a in node.names if a.name.startswith("_")]
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                value = node.value
                if isinstance(value, ast.Name) and value.id in {m.rpartition(".")[2] for m in modules} and value.id != "self":
                    bad.append(f"{name}: {value.id}.{node.attr}")
    assert bad == []


def test_every_module_imports_on_its_own():
    # One fresh interpreter; before each module, every tfaesthetic module is dropped
    # from sys.modules, so a module that only works after another one was imported
    # fails here (TensorFlow stays loaded: ~5 s of start-up once, not per module).
    modules = _modules()
    names = sorted(n for n in modules if not n.endswith("__main__"))
    # CLI modules define absl flags at import: each gets an interpreter of its own.
    clis = [n for n in names if "flags.DEFINE_" in open(modules[n], encoding="utf-8").read()]
    names = [n for n in names if n not in clis]
    code = (
        "import importlib, sys, traceback\n"
        "bad = []\n"
        "for n in sys.argv[1:]:\n"
        "    for m in [m for m in sys.modules if m == 'tfaesthetic' or m.startswith('tfaesthetic.')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{n}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for group in [names] + [[n] for n in clis]:
        proc = subprocess.run([sys.executable, "-c", code, *group], cwd=ROOT, capture_output=True, text=True,
                              timeout=600, env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
