"""Every package folder is declared in pyproject, so the wheel carries all of it."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE_FOLDERS = {
    "model": "savgan.model",
    "cli": "savgan.cli",
    "common": "savgan.common",
    "worker": "savgan.worker",
    "service": "savgan.service",
}


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    for folder, name in NAMESPACE_FOLDERS.items():
        assert config["package-dir"][name] == folder
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            assert ".".join((name, *relative)) in declared, f"{init.parent} is missing from pyproject packages"


def test_the_import_names_live_under_the_savgan_namespace():
    import savgan.cli
    import savgan.model

    assert Path(savgan.model.__file__).resolve().parent == ROOT / "model"
    assert Path(savgan.cli.__file__).resolve().parent == ROOT / "cli"


def test_the_api_side_imports_without_torch():
    """The API image carries no torch: its modules and the serve command must not import it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import savgan.service.app, savgan.service.server, savgan.worker.app, savgan.common.models_store\n"
        "from savgan.cli.main import build_parser\n"
        "build_parser().parse_args(['serve', '--embedded'])\n"
        "assert 'savgan.model.networks' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
