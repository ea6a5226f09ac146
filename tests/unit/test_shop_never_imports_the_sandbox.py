"""The shop and the ledger never import the sandbox gateway: it is a plugin the app
factory mounts by its configured name, and it talks to the shop only over HTTP."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "alipay_sandbox"
IMPORT_FUNCTIONS = {"import_module", "__import__"}


def _names_plugin(name: str | None) -> bool:
    return bool(name) and (name == PLUGIN or name.startswith(PLUGIN + "."))


def plugin_imports(tree: ast.AST) -> list[int]:
    """Line numbers of every import of the plugin, at any depth (inside functions too),
    including ``importlib.import_module("alipay_sandbox…")`` with a literal name."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            lines += [node.lineno for alias in node.names if _names_plugin(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and _names_plugin(node.module):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0] if node.args else None
            if (
                called in IMPORT_FUNCTIONS
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and _names_plugin(first.value)
            ):
                lines.append(node.lineno)
    return lines


def test_the_check_sees_imports_at_any_depth():
    source = (
        "import os\n"
        "def f():\n"
        "    import alipay_sandbox.cashier\n"
        "    from alipay_sandbox import api\n"
        "    importlib.import_module('alipay_sandbox')\n"
        "from shop import alipay_sandbox_like\n"
    )
    assert plugin_imports(ast.parse(source)) == [3, 4, 5]


def test_no_module_of_shop_or_ledger_imports_the_sandbox():
    offenders = []
    for package in ("shop", "ledger"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            offenders += [f"{path.relative_to(ROOT)}:{line}" for line in plugin_imports(tree)]
    assert offenders == []
