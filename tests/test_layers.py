"""The package's shape: the command line (metastyle_jax/commands/) sits on top of the library, and library
functions stay short enough to read at once."""

import ast
from pathlib import Path

import metastyle_jax

PACKAGE = Path(metastyle_jax.__file__).parent
MAX_FUNCTION_LINES = 60


def library_modules():
    """Every module of the package outside the command layer (commands/ and __main__.py)."""
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if "commands" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py"]


def _is_main_guard(node):
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def imported_names(tree):
    """The modules imported anywhere in `tree` except inside its `if __name__ == "__main__":` block (the
    entry point of `python -m metastyle_jax.NAME`, which hands over to the command layer)."""
    names = []
    body = [n for n in tree.body if not _is_main_guard(n)]
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def test_no_library_module_imports_the_command_layer():
    offenders = {p.name: [n for n in imported_names(ast.parse(p.read_text()))
                          if n.startswith(("metastyle_jax.commands", "metastyle_jax.cli"))]
                 for p in library_modules()}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert len(library_modules()) > 25


def test_the_main_guard_of_a_library_module_only_hands_over_to_its_command():
    for path in library_modules():
        guards = [n for n in ast.parse(path.read_text()).body if _is_main_guard(n)]
        for guard in guards:
            text = ast.unparse(guard)
            assert f"commands.run('{path.stem}')" in text, path.name
            assert len(guard.body) == 2, path.name


def test_the_import_check_sees_an_import_of_the_command_layer():
    tree = ast.parse("import os\nfrom metastyle_jax.commands import cli\ndef f():\n    from metastyle_jax import "
                     "commands\nif __name__ == '__main__':\n    from metastyle_jax import commands\n")
    names = imported_names(tree)
    assert "metastyle_jax.commands" in names and names.count("metastyle_jax.commands") == 2  # top, in f


def long_functions(tree, limit=MAX_FUNCTION_LINES):
    """[(name, lines)] of the functions and methods of `tree` longer than `limit` lines."""
    return [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


def test_no_library_function_is_longer_than_60_lines():
    found = {p.name: long_functions(ast.parse(p.read_text())) for p in library_modules()}
    assert {k: v for k, v in found.items() if v} == {}
