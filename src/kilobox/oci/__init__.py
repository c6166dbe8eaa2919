"""The image model: digests, descriptors, manifests, indexes, configs, platforms, references."""

from .descriptor import Descriptor
from .digest import Digest, VerifyingReader, sha256
from .manifest import (MAX_MANIFEST_BYTES, ImageConfig, Index, Manifest, canonical_json,
                       parse_manifest_or_index)
from .platform import Platform
from .reference import Reference, is_local_host
from . import mediatypes

__all__ = ["Descriptor", "Digest", "VerifyingReader", "sha256", "MAX_MANIFEST_BYTES", "ImageConfig",
           "Index", "Manifest", "canonical_json", "parse_manifest_or_index", "Platform", "Reference",
           "is_local_host", "mediatypes"]
