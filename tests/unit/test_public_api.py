"""The public surface: what each package exports, and who may reach into what is private.

The rules (docs/architecture.md, Layers):

- Every package under ``voxloop`` declares ``__all__``; every name in it imports, and every public name
  the package's ``__init__`` defines itself is listed.
- A public module that declares ``__all__`` agrees with its package: the names both export are the same
  objects, and a name the package exports from that module is in the module's ``__all__`` too.
- A private name (``_name``: a module, or anything in a module) is used only inside the package that
  holds it. ``lint-imports`` checks private modules; this also checks private names in public modules.
- ``bench`` and ``examples`` use the public packages only. A test may also reach into the private modules
  and names of one package, the one it tests (white-box); privates of a second package in the same file
  are a dependency, not the unit under test, and must come from that package's public surface.
- ``voxloop/__init__.py`` sits below every layer: it imports nothing from voxloop.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE_DIR = SRC / "voxloop"


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(module: str) -> bool:
    return (SRC / module.replace(".", "/") / "__init__.py").is_file()


PACKAGES = sorted(
    _module_name(p)
    for p in PACKAGE_DIR.rglob("__init__.py")
    if not any(_is_private(part) for part in _module_name(p).split("."))
)
PUBLIC_MODULES = sorted(
    _module_name(p)
    for p in PACKAGE_DIR.rglob("*.py")
    if p.name != "__init__.py" and not any(_is_private(part) for part in _module_name(p).split("."))
)


@dataclass(frozen=True)
class PrivateUse:
    """``file`` imports ``target`` (``module`` or ``module.name``), private to ``owner``: the package that
    holds ``private_module`` (the private module itself, or the module that defines the private name)."""

    file: str
    line: int
    target: str
    owner: str
    private_module: str


def _owner_of(target: str) -> tuple[str, str] | None:
    """For a dotted path with a private part: the package that holds it, and the private module (or the
    module holding the private name)."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if _is_private(part):
            holder = ".".join(parts[:i])
            owner = holder if _is_package(holder) else holder.rpartition(".")[0]
            private_module = ".".join(parts[: i + 1]) if _is_package(holder) else holder
            return owner, private_module
    return None


def _imports(path: Path, module: str | None) -> list[tuple[int, str]]:
    """Every voxloop path a file imports, as ``module`` or ``module.name``, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = (module if path.name == "__init__.py" else module.rpartition(".")[0]) if module else ""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            found.extend((node.lineno, f"{source}.{alias.name}") for alias in node.names)
    return [(line, target) for line, target in found if target.split(".")[0] == "voxloop"]


def _private_uses(path: Path, module: str | None) -> list[PrivateUse]:
    uses = []
    for line, target in _imports(path, module):
        owned = _owner_of(target)
        if owned is None:
            continue
        owner, private_module = owned
        if module is not None and (module == owner or module.startswith(owner + ".")):
            continue
        file = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        uses.append(PrivateUse(file, line, target, owner, private_module))
    return uses


def _load(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:  # an extra that is not installed (aiortc, openai...), not our bug
        if exc.name is None or exc.name.split(".")[0] == "voxloop":
            raise
        pytest.skip(f"{name} needs {exc.name}")


def test_the_packages_are_found() -> None:
    # Guards the discovery itself: a broken walk would make every test below pass on nothing.
    assert {"voxloop", "voxloop.frames", "voxloop.pipeline", "voxloop.testing.realtime_emulator"} <= set(
        PACKAGES
    )
    assert {"voxloop.cli", "voxloop.transports.webrtc", "voxloop.rtvi.processor"} <= set(PUBLIC_MODULES)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_declares_all_and_its_names_import(name: str) -> None:
    package = _load(name)
    exported = getattr(package, "__all__", None)
    assert isinstance(exported, list | tuple), f"{name} has no __all__"
    assert all(isinstance(item, str) for item in exported)
    duplicates = sorted({item for item in exported if list(exported).count(item) > 1})
    assert not duplicates, f"{name}.__all__ lists {duplicates} twice"
    missing = [item for item in exported if not hasattr(package, item)]
    assert not missing, f"{name}.__all__ lists {missing}, which it does not define"
    private = [item for item in exported if _is_private(item)]
    assert not private, f"{name}.__all__ exports private names {private}"
    star: dict[str, object] = {}
    exec(f"from {name} import *", star)
    assert set(exported) <= set(star)


@pytest.mark.parametrize("name", PACKAGES)
def test_public_names_defined_in_a_package_init_are_exported(name: str) -> None:
    init = SRC / name.replace(".", "/") / "__init__.py"
    defined: set[str] = set()
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
    public = {item for item in defined if not item.startswith("_")}
    unlisted = sorted(public - set(_load(name).__all__))
    assert not unlisted, f"{name} defines {unlisted} but leaves them out of __all__"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_a_public_modules_all_agrees_with_its_package(name: str) -> None:
    module = _load(name)
    package = _load(name.rpartition(".")[0])
    package_all = set(package.__all__)
    module_all = getattr(module, "__all__", None)
    if module_all is None:
        return
    missing = [item for item in module_all if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ lists {missing}, which it does not define"
    differ = [
        item
        for item in module_all
        if item in package_all and getattr(package, item) is not getattr(module, item)
    ]
    assert not differ, f"{name} and its package export different objects as {differ}"
    from_here = [
        item
        for item in package_all
        if getattr(getattr(package, item), "__module__", None) == name and item not in module_all
    ]
    assert not from_here, f"{package.__name__} exports {from_here} from {name}, whose __all__ leaves them out"


def test_the_root_package_imports_nothing_from_voxloop() -> None:
    # Every layer may import `voxloop` (for __version__), so it must stay below them all.
    assert _imports(PACKAGE_DIR / "__init__.py", "voxloop") == []


def test_no_module_uses_another_packages_private_names() -> None:
    uses = [
        use for path in sorted(PACKAGE_DIR.rglob("*.py")) for use in _private_uses(path, _module_name(path))
    ]
    assert not uses, "private names used outside their package (re-export them from it):\n" + "\n".join(
        f"  {u.file}:{u.line} imports {u.target} (private to {u.owner})" for u in uses
    )


def _outside_files(top: str) -> list[Path]:
    skip = {"peer", ".venv-pipecat", "node_modules"}
    return [p for p in sorted((ROOT / top).rglob("*.py")) if not skip & set(p.relative_to(ROOT).parts)]


def test_bench_and_examples_use_only_the_public_packages() -> None:
    uses = [
        use
        for top in ("bench", "examples")
        for path in _outside_files(top)
        for use in _private_uses(path, None)
    ]
    assert not uses, "private voxloop names in benchmarks or examples:\n" + "\n".join(
        f"  {u.file}:{u.line} imports {u.target}" for u in uses
    )


def _second_packages(uses: list[PrivateUse]) -> list[PrivateUse]:
    """The uses beyond the first package whose privates a test file reaches into (that one it tests)."""
    by_file: dict[str, list[PrivateUse]] = {}
    for use in uses:
        by_file.setdefault(use.file, []).append(use)
    extra = []
    for file_uses in by_file.values():
        owners = sorted({u.owner for u in file_uses})
        if len(owners) > 1:
            extra.extend(file_uses)
    return extra


def test_a_test_reaches_into_the_privates_of_one_package_only() -> None:
    uses = [use for path in _outside_files("tests") for use in _private_uses(path, None)]
    extra = _second_packages(uses)
    assert not extra, (
        "a test uses the privates of more than one package; take the dependency's names from its "
        "public package (re-export them there):\n"
        + "\n".join(f"  {u.file}:{u.line} imports {u.target} (private to {u.owner})" for u in extra)
    )


def test_the_private_use_check_catches_a_violation(tmp_path: Path) -> None:
    # The checks above pass on a clean tree; this shows they would fail on a dirty one.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from voxloop.transports._webrtc_connection import FRAME_BYTES\n"
        "from voxloop.services.local.whisper import _models\n"
        "from voxloop.turns import TurnController\n",
        encoding="utf-8",
    )
    outside = [(u.target, u.owner) for u in _private_uses(probe, None)]
    assert outside == [
        ("voxloop.transports._webrtc_connection.FRAME_BYTES", "voxloop.transports"),
        ("voxloop.services.local.whisper._models", "voxloop.services.local"),
    ]
    # The same imports from inside voxloop.transports: its own private module is fine there.
    inside = [u.target for u in _private_uses(probe, "voxloop.transports.webrtc")]
    assert inside == ["voxloop.services.local.whisper._models"]
    # As a test file: the privates of two packages, so neither is the one unit under test.
    assert len(_second_packages(_private_uses(probe, None))) == 2
    probe.write_text("from voxloop.transports._webrtc_connection import FRAME_BYTES, AudioOutBuffer\n")
    assert _second_packages(_private_uses(probe, None)) == []
