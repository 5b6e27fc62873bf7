"""Where an error in the user's own code happened: the error, and its frames in the user's files.

A run whose task (``build``, ``loss``, ``evaluate``) or optimizer raises is recorded as
``failed`` with a one-line error. "RuntimeError: boom" alone sends the user hunting, so
:func:`describe_failure` adds the innermost frame of the traceback that lies in the user's own
files (file, line and code) and up to two of its callers there::

    RuntimeError: boom in build (at model.py:12 in build: raise RuntimeError("boom in build"))

The user's files are every file outside tuner's own package, the standard library,
site-packages and torch. When no frame of the traceback is in one, the frames of the built-in
plugins (``tuner_plugins``) stand in: the code of a task or optimizer shipped with tuner. A file
under the current directory is shown relative to it. The text stays one line and at most
:data:`LONGEST_FAILURE` characters, so it can be stored with the run and printed anywhere.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator

from tuner.errors import describe_exception

LONGEST_FAILURE = 1000
"""Characters of a described failure kept (a longer one ends in ``...``)."""

LONGEST_CODE = 120
"""Characters of a frame's line of code kept."""

CALLERS_SHOWN = 2
"""Callers of the innermost user frame shown after it (by file, line and function)."""

PLUGINS_PACKAGE = "tuner_plugins"


def describe_failure(error: BaseException) -> str:
    """``describe_exception(error)`` followed by where it happened in the user's files:
    ``RuntimeError: boom (at model.py:12 in build: raise RuntimeError("boom"); called from
    model.py:30 in make)``; without such a frame, the description alone."""
    described = describe_exception(error)
    frames = user_frames(error)
    if not frames:
        return described
    innermost, callers = frames[-1], frames[-1 - CALLERS_SHOWN:-1][::-1]
    where = f"at {_frame_text(innermost, with_code=True)}"
    if callers:
        where += "; called from " + ", ".join(_frame_text(frame) for frame in callers)
    text = f"{described} ({where})"
    return text if len(text) <= LONGEST_FAILURE else text[: LONGEST_FAILURE - 3] + "..."


def user_frames(error: BaseException) -> list[traceback.FrameSummary]:
    """The frames of ``error``'s traceback (outermost first) in the user's files, else in the
    built-in plugins' files; for an error raised from or while handling another, the first
    traceback of the chain that has any."""
    roots, plugins = _library_roots(), _package_root(PLUGINS_PACKAGE)
    owners = [
        [(frame, _owner(frame.filename, roots, plugins))
         for frame in traceback.extract_tb(link.__traceback__)]
        for link in _chain(error)
    ]
    for wanted in ("user", "plugin"):
        for frames in owners:
            found = [frame for frame, owner in frames if owner == wanted]
            if found:
                return found
    return []


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then the errors it was raised from or while handling (at most a few)."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen and len(seen) < 5:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _library_roots() -> tuple[str, ...]:
    """The folders whose code is not the user's: tuner's package, the standard library,
    site-packages, and torch wherever it is installed."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    roots = [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
    roots += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    roots += [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # tuner/
    torch = _package_root("torch")
    if torch is not None:
        roots.append(torch)
    return tuple(os.path.normcase(os.path.abspath(root)) for root in roots)


def _package_root(name: str) -> str | None:
    """The folder of an imported package, or None when it is not imported."""
    module = sys.modules.get(name)
    location = getattr(module, "__file__", None)
    return os.path.normcase(os.path.dirname(os.path.abspath(location))) if location else None


def _owner(filename: str, roots: tuple[str, ...], plugins: str | None) -> str:
    """Whose code a file is: ``plugin`` (tuner's built-in plugins), ``library`` (under one of
    ``roots``, in site-packages, or not a file at all: ``<frozen runpy>``) or ``user``."""
    if not filename or filename.startswith("<"):
        return "library"
    path = os.path.normcase(os.path.abspath(filename))
    if plugins is not None and _is_under(path, plugins):
        return "plugin"
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return "library"
    return "library" if any(_is_under(path, root) for root in roots) else "user"


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _frame_text(frame: traceback.FrameSummary, with_code: bool = False) -> str:
    """``model.py:12 in build`` (with ``: its code`` when asked and known)."""
    text = f"{_shown_path(frame.filename)}:{frame.lineno} in {frame.name}"
    code = " ".join((frame.line or "").split()) if with_code else ""
    if len(code) > LONGEST_CODE:
        code = code[: LONGEST_CODE - 3] + "..."
    return f"{text}: {code}" if code else text


def _shown_path(filename: str) -> str:
    """The file relative to the current directory when it is under it, else as it is."""
    try:
        here = os.getcwd()
    except OSError:  # the current directory was removed
        return filename
    path = os.path.abspath(filename)
    if path.startswith(here.rstrip(os.sep) + os.sep):
        return os.path.relpath(path, here)
    return filename
