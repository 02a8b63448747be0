"""The public surface: what each package exports, and who may reach into what is private.

The rules (docs/architecture.md, Layers):

- Every package under ``voxloop`` declares ``__all__``; every name in it imports, and every public name
  the package's ``__init__`` defines itself is listed.
- A public module that declares ``__all__`` agrees with its package: the names both export are the same
  objects, and a name the package exports from that module is in the module's ``__all__`` too.
- A private name (``_name``: a module, or anything in a module) is used only inside the package that
  holds it. ``lint-imports`` checks private modules; this also checks private names in public modules.
- ``tests``, ``bench`` and ``examples`` use the public packages. A test may import a private module only
  for a white-box test of that very module: it is listed in ``WHITE_BOX`` with the reason.
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

#: (file, private module) -> why this test needs the module itself rather than its package.
WHITE_BOX: dict[tuple[str, str], str] = {
    (
        "tests/services/test_espeak_tts.py",
        "voxloop.services.local._speech_worker",
    ): "the speech worker's own code, run in-process to test its engine fallbacks",
    (
        "tests/transports/test_webrtc_audio.py",
        "voxloop.transports._webrtc_connection",
    ): "the outgoing audio buffer's 20 ms framing (FRAME_BYTES is internal)",
    (
        "tests/realtime/test_realtime_emulator_faults.py",
        "voxloop.testing.realtime_emulator._validate",
    ): "the emulator's own event validator, tested on invalid events",
}


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


def test_tests_bench_and_examples_use_the_public_packages() -> None:
    files = [p for top in ("tests", "bench", "examples") for p in sorted((ROOT / top).rglob("*.py"))]
    files = [p for p in files if not {"peer", ".venv-pipecat", "node_modules"} & set(p.parts)]
    uses = [use for path in files for use in _private_uses(path, None)]
    unlisted = [u for u in uses if (u.file, u.private_module) not in WHITE_BOX]
    assert not unlisted, "private voxloop names imported from outside the package:\n" + "\n".join(
        f"  {u.file}:{u.line} imports {u.target}" for u in unlisted
    )
    stale = set(WHITE_BOX) - {(u.file, u.private_module) for u in uses}
    assert not stale, f"WHITE_BOX entries no longer needed: {sorted(stale)}"


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
