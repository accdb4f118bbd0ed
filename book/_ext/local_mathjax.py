"""Serve MathJax from the built book's own `_static/mathjax`, so its math renders offline.

A reader on a cluster node, a train or behind a firewall sees typeset formulas: nothing is
fetched from a CDN when the book is built or read. The MathJax 3 files come from the PyPI
package django-static-mathjax (in requirements.txt); `mathjax_path` in _config.yml points
at `mathjax/tex-chtml.js`, which Sphinx resolves relative to `_static`.
"""
import shutil
from pathlib import Path

from sphinx.errors import ExtensionError

STATIC_FOLDER = "mathjax"


def mathjax_files():
    """The folder of MathJax's browser components (tex-chtml.js, fonts, extensions)."""
    try:
        import mathjax  # the import name of django-static-mathjax
    except ImportError:
        raise ExtensionError("MathJax is not installed: run pip install -r requirements.txt "
                             "(it installs django-static-mathjax)") from None
    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def check_path(app, config):
    if not config.mathjax_path.startswith(f"{STATIC_FOLDER}/"):
        raise ExtensionError(f"mathjax_path is {config.mathjax_path!r}: set it to "
                             f"'{STATIC_FOLDER}/tex-chtml.js' in _config.yml (served locally)")
    mathjax_files()


def copy_mathjax(app, exception):
    if exception is None and app.builder.format == "html":
        shutil.copytree(mathjax_files(), Path(app.outdir) / "_static" / STATIC_FOLDER,
                        dirs_exist_ok=True)


def setup(app):
    app.connect("config-inited", check_path)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
