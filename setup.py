"""Build hook: compile the translation catalogues (.po, committed) into .mo files (not committed).

Everything else about the package is in pyproject.toml. A wheel gets the .mo files next to the
.po files; an editable install (`pip install -e .`) compiles them in the source tree. A clone
whose .po changed after installing is covered at start-up (bidhub.web.i18n).
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TRANSLATIONS = Path("bidhub") / "translations"


def compile_catalogues(source: Path, target: Path) -> list[Path]:
    """Compile every `<locale>/LC_MESSAGES/*.po` under `source` to a .mo under `target`."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po_path in sorted(source.glob("*/LC_MESSAGES/*.po")):
        locale = po_path.parent.parent.name
        with po_path.open("rb") as po_file:
            catalogue = read_po(po_file, locale=locale)
        mo_path = target / po_path.relative_to(source).with_suffix(".mo")
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with mo_path.open("wb") as mo_file:
            write_mo(mo_file, catalogue)
        written.append(mo_path)
    return written


class BuildWithCatalogues(build_py):
    def run(self) -> None:
        super().run()
        # An editable install imports the package from the source tree, a wheel from build_lib.
        target = TRANSLATIONS if self.editable_mode else Path(self.build_lib) / TRANSLATIONS
        compile_catalogues(TRANSLATIONS, target)


setup(cmdclass={"build_py": BuildWithCatalogues})
