"""LocalEngine: runs in kernel sandboxes on this host (SPEC §4), through
libspr's spr_local_engine_new. The engine is created (and a venv_dir built,
in a sandbox, with exactly the pinned packages) when the object is."""
import ctypes
import os
import shutil
import sys

from .. import _native
from ..policy import RunnerPolicy
from ._base import SprEngine
from .config import validate_pinned_packages

NO_POOL = _native.LOCAL_NO_POOL


def default_venv_manager():
    """uv when it is on PATH, else the interpreter's venv module. The
    reference defaulted to "uv" and failed without it; spr builds with
    either (SPEC §7 "Environments"), so a missing uv is no reason to fail."""
    return "uv" if shutil.which("uv") else "python"


def default_python():
    """The interpreter running this program (its sys.executable, as the
    reference's `python -m venv` used): a venv's python runs the code in
    that venv. None (libspr's /usr/bin/python3) when embedded without one."""
    return sys.executable or None


class _LocalEngine(SprEngine):
    _what = "LocalEngine"

    def __init__(self, *, venv_dir, venv_manager, packages, python, allow_degraded,
                 cgroup_parent, pool_size, uid_range, pip_index_url, pip_find_links,
                 pip_no_index, install_policy, install_timeout_seconds, show_progress,
                 libexec_dir):
        if venv_dir is not None:
            venv_dir = os.fspath(venv_dir)
            if not venv_dir.strip():
                raise ValueError("LocalEngine requires a non-empty 'venv_dir'")
            venv_dir = os.path.abspath(os.path.expanduser(venv_dir.strip()))
        packages = validate_pinned_packages(packages)
        super().__init__()
        self._venv_dir = venv_dir
        self._packages = packages
        self._venv_manager = None
        if venv_dir is not None:
            self._venv_manager = venv_manager if venv_manager is not None \
                else default_venv_manager()
        elif venv_manager is not None:
            self._venv_manager = venv_manager  # libspr says it needs venv_dir
        self._python = os.fspath(python) if python is not None else default_python()
        if install_policy is not None and not isinstance(install_policy, RunnerPolicy):
            raise TypeError("install_policy must be a RunnerPolicy")
        # Everything the options point at stays alive as long as the engine.
        self._keep = []
        o = _native.LocalOptions()
        o.python = self._cstr(self._python)
        o.libexec_dir = self._cstr(libexec_dir)
        o.allow_degraded = bool(allow_degraded)
        o.cgroup_parent = self._cstr(cgroup_parent)
        o.pool_size = 0 if pool_size is None else int(pool_size)
        o.uid_range = self._cstr(uid_range)
        o.venv_dir = self._cstr(venv_dir)
        o.venv_manager = self._cstr(self._venv_manager)
        if packages:
            arr = _native.CStrings(packages)
            self._keep.append(arr)
            o.packages = arr.pointer
        o.pip.index_url = self._cstr(pip_index_url)
        o.pip.find_links = self._cstr(pip_find_links)
        o.pip.no_index = bool(pip_no_index)
        if install_policy is not None:
            pol = _native.Policy(install_policy.to_dict())
            self._keep.append(pol)
            o.install_policy = pol.ptr
        o.install_timeout_seconds = int(install_timeout_seconds or 0)
        o.show_progress = bool(show_progress)
        self._options = o
        _native.call(_native.lib.spr_local_engine_new, ctypes.byref(o), ctypes.byref(self._h.ptr))

    def _cstr(self, value):
        b = _native.cstr(value)
        if b is not None:
            self._keep.append(b)
        return b

    @property
    def venv_dir(self):
        return self._venv_dir

    @property
    def python(self):
        """The interpreter given to libspr (a venv_dir's runs use the venv's)."""
        return self._python

    def _python_path(self):
        """The reference's private helper: the interpreter runs use."""
        from pathlib import Path
        if self._venv_dir:
            return Path(self._venv_dir) / "bin" / "python"
        return Path(self._python or "/usr/bin/python3")

    def doctor(self) -> dict:
        """What this host offers the LocalEngine (spr doctor's report, SPEC §7),
        for these options."""
        return _native.call_json(_native.lib.spr_local_doctor, ctypes.byref(self._options))

    def __repr__(self):
        venv = f"venv_dir={self._venv_dir!r}, " if self._venv_dir else ""
        return f"{type(self).__name__}({venv}python={self._python!r})"


class LocalEngine(_LocalEngine):
    """The reference's LocalEngine: `venv_dir` (required, as in the
    reference) is a venv spr makes and keeps, with exactly `packages`
    (pinned `name==version`), built in a sandbox when the engine is created.
    spr's options follow (SPEC §4, §7): `python` (default: this
    interpreter), `allow_degraded`, `cgroup_parent`, `pool_size` (warm
    sandboxes, 0: 1, up to 8, -1: none), `uid_range`, the pip options, and
    the install's `install_policy`, `install_timeout_seconds`,
    `show_progress`.

    venv_manager: None picks "uv" when uv is on PATH, else "python" (the
    reference defaulted to "uv" and failed without it)."""

    def __init__(self, *, venv_dir: str, venv_manager: str | None = None,
                 packages: list[str] | None = None, python: str | None = None,
                 allow_degraded: bool = False, cgroup_parent: str | None = None,
                 pool_size: int | None = None, uid_range: str | None = None,
                 pip_index_url: str | None = None, pip_find_links: str | None = None,
                 pip_no_index: bool = False, install_policy: RunnerPolicy | None = None,
                 install_timeout_seconds: int | None = None, show_progress: bool = False,
                 libexec_dir: str | None = None) -> None:
        if venv_dir is None:
            raise ValueError("LocalEngine requires a non-empty 'venv_dir'")
        super().__init__(venv_dir=venv_dir, venv_manager=venv_manager, packages=packages,
                         python=python, allow_degraded=allow_degraded,
                         cgroup_parent=cgroup_parent, pool_size=pool_size, uid_range=uid_range,
                         pip_index_url=pip_index_url, pip_find_links=pip_find_links,
                         pip_no_index=pip_no_index, install_policy=install_policy,
                         install_timeout_seconds=install_timeout_seconds,
                         show_progress=show_progress, libexec_dir=libexec_dir)


class SprLocalEngine(LocalEngine):
    """spr's LocalEngine (exported as spr.LocalEngine): as the reference's,
    but venv_dir is optional. Without it, runs use `python` (default: this
    interpreter) directly, the fastest way (a warm run costs a few ms)."""

    def __init__(self, *, venv_dir: str | None = None, venv_manager: str | None = None,
                 packages: list[str] | None = None, python: str | None = None,
                 allow_degraded: bool = False, cgroup_parent: str | None = None,
                 pool_size: int | None = None, uid_range: str | None = None,
                 pip_index_url: str | None = None, pip_find_links: str | None = None,
                 pip_no_index: bool = False, install_policy: RunnerPolicy | None = None,
                 install_timeout_seconds: int | None = None, show_progress: bool = False,
                 libexec_dir: str | None = None) -> None:
        # (past LocalEngine.__init__, which requires venv_dir)
        _LocalEngine.__init__(
            self, venv_dir=venv_dir, venv_manager=venv_manager, packages=packages,
            python=python, allow_degraded=allow_degraded, cgroup_parent=cgroup_parent,
            pool_size=pool_size, uid_range=uid_range, pip_index_url=pip_index_url,
            pip_find_links=pip_find_links, pip_no_index=pip_no_index,
            install_policy=install_policy, install_timeout_seconds=install_timeout_seconds,
            show_progress=show_progress, libexec_dir=libexec_dir)


# spr.LocalEngine is this class; it prints and pickles under that name.
SprLocalEngine.__name__ = SprLocalEngine.__qualname__ = "LocalEngine"
