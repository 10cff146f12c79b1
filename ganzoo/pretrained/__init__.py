"""Published checkpoints of other projects as ordinary ganzoo runs (``ganzoo import``).

One module per source format registers a converter (:mod:`.base`); every foreign file is read through
the allow-list unpickler (:mod:`.safe_pickle`); :mod:`.run_folder` writes the run; :mod:`.download`
fetches a URL into a checksummed cache. Depends on models, runtime and training.checkpoint only.
"""

from __future__ import annotations

import importlib

FORMAT_MODULES = ("nvlabs_pytorch", "nvlabs_tf", "biggan_pytorch", "studiogan", "taming", "enhancing")
_loaded = False


def load_format_modules() -> None:
    """Import every converter module so that each registers its format."""
    global _loaded
    if _loaded:
        return
    for name in FORMAT_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    _loaded = True
