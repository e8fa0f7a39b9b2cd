"""The console's static assets, read as files (no browser): they load nothing from elsewhere, every file ships in
the package, nothing fights the CSP, and every string the pages show exists in English and Chinese."""

from __future__ import annotations

import json
import re
import tomllib
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"
ASSET_TYPES = (".html", ".js", ".css", ".svg", ".json")
# The only absolute URLs an asset may hold: the SVG namespace and the Cognito endpoint sign-in posts to (AWS only)
ALLOWED_URLS = {"http://www.w3.org/2000/svg", "https://cognito-idp.${auth.region}.amazonaws.com/"}


def _assets() -> dict[str, str]:
    files = resources.files("cdp_console")
    return {f.name: f.read_text(encoding="utf-8") for f in files.iterdir() if f.name.endswith(ASSET_TYPES)}


def test_the_assets_reference_only_same_origin_files_that_exist() -> None:
    # Given every asset the console serves
    assets = _assets()
    assert {"index.html", "app.js", "console.css", "strings.json"} <= set(assets)
    for name, text in assets.items():
        # Then no absolute URL but the allowed ones appears in any of them
        urls = set(re.findall(r"""https?://[^\s"'`)<>]+""", text))
        assert urls <= ALLOWED_URLS, (name, urls - ALLOWED_URLS)
        # And every module import, src, href and url() names a file of the package
        refs = re.findall(r"""(?:from|import)\s+["']([^"']+)["']""", text) if name.endswith(".js") else []
        refs += re.findall(r"""(?:src|href)=["']([^"'#][^"']*)["']""", text) if name.endswith(".html") else []
        refs += re.findall(r"""url\(\s*["']?([^"')]+)""", text) if name.endswith(".css") else []
        for ref in refs:
            assert ref.startswith("./") or "/" not in ref, (name, ref)
            assert ref.removeprefix("./") in assets, (name, ref)


def test_every_console_file_ships_in_the_package() -> None:
    # Given the package data patterns of cdp_console in pyproject.toml
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data = config["tool"]["setuptools"]["package-data"]
    patterns = [*data.get("*", []), *data.get("cdp_console", [])]
    # Then every console file (flat: patterns do not reach sub-folders) matches one
    for path in CONSOLE.iterdir():
        if path.name.startswith((".", "__")):
            continue
        assert path.is_file(), f"{path.name}: a sub-folder would not ship (package-data patterns are flat)"
        assert path.suffix == ".py" or any(fnmatch(path.name, p) for p in patterns), path.name


def test_nothing_in_the_scripts_fights_the_content_security_policy() -> None:
    # The CSP allows no inline script and no style attribute: pages build nodes, never markup or style strings
    for name, text in _assets().items():
        if name.endswith(".js"):
            for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", 'setAttribute("style"'):
                assert banned not in text, (name, banned)
            assert "eval(" not in text and "new Function" not in text, name
        if name.endswith(".html"):
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"{name}: inline script"
            assert " style=" not in text and "<style" not in text, f"{name}: inline style"
            assert not re.search(r"\son[a-z]+=", text), f"{name}: inline event handler"


def test_every_string_a_page_shows_exists_in_english_and_chinese() -> None:
    # Given the strings files (each with the same keys in both languages, no key in two files) and every key the
    # scripts ask for
    loaded = [json.loads(f.read_text(encoding="utf-8")) for f in sorted(CONSOLE.glob("strings*.json"))]
    strings: dict[str, dict[str, str]] = {"en": {}, "zh": {}}
    for file in loaded:
        assert set(file["en"]) == set(file["zh"])
        assert all(file["zh"][k].strip() for k in file["zh"])
        assert not set(file["en"]) & set(strings["en"]), "a key in two strings files"
        for name in ("en", "zh"):
            strings[name].update(file[name])
    files = re.findall(r'"(strings[a-z-]*\.json)"', (CONSOLE / "i18n.js").read_text(encoding="utf-8"))
    assert sorted(files) == sorted(f.name for f in CONSOLE.glob("strings*.json")), "i18n.js loads every file"
    scripts = "\n".join(t for n, t in _assets().items() if n.endswith(".js"))
    used = set(re.findall(r"""\bt\(\s*"([a-z_]+\.[a-z0-9_.]+)\"""", scripts))
    # Then each is translated
    missing = sorted(k for k in used if k not in strings["en"])
    assert not missing, missing
    # And each value family a page labels (statuses, stages, channels, ...) has at least one entry
    prefixes = set(re.findall(r"""\blabel\(\s*"([a-z_]+\.)\"""", scripts))
    assert prefixes
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in strings["en"]), prefix
