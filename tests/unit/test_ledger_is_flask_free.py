import subprocess
import sys


def test_ledger_package_never_imports_flask():
    code = (
        "import sys, pkgutil, importlib, ledger\n"
        "for m in pkgutil.walk_packages(ledger.__path__, 'ledger.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules\n"
        "             if n == 'flask' or n.startswith(('flask.', 'flask_')))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
