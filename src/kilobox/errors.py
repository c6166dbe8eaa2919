"""The kilobox exception tree.

Every error kilobox raises on purpose derives from :class:`KiloboxError` and
carries a one-line message (what and where) and an optional ``hint`` (what to
do about it). The CLI turns each family into an exit code in one table
(:data:`kilobox.cli.EXIT_CODES`); nothing else decides exit codes.

::

    KiloboxError
    ├── UsageError               bad arguments or options
    ├── ReferenceError_          unparsable image reference or transport
    ├── FormatError              malformed outside data
    │   ├── DigestMismatch       content does not hash to its descriptor
    │   ├── ManifestError        manifest / index / config JSON is invalid
    │   ├── LayerError           hostile or corrupt tar / gzip / zstd
    │   └── LayoutError          OCI layout, oci-archive, docker-archive
    ├── NotFound                 image, tag, blob or container does not exist
    ├── RegistryError            the registry said no (carries spec error codes)
    │   └── AuthError            credentials missing or refused
    ├── StoreError               the local store (cache) failed
    ├── BuildError               compile, ELF check, kilobox.toml
    │   └── BudgetExceeded       the image is larger than max_size
    ├── RunError                 runtime missing or failed, container state
    ├── AuditError               audit/policy failures that are not findings
    ├── PolicyViolation          a gate (--fail-on, --policy) failed
    └── ToolMissing              an external program is not installed
"""

from __future__ import annotations


class KiloboxError(Exception):
    """Root of all kilobox errors."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(KiloboxError):
    """Invalid command-line arguments or API parameters."""


class ReferenceError_(KiloboxError):  # noqa: N801 - avoid shadowing the builtin
    """An image reference or transport string cannot be parsed."""


class FormatError(KiloboxError):
    """Data read from outside is malformed."""


class DigestMismatch(FormatError):
    """Content does not match the digest or size it was announced with."""


class ManifestError(FormatError):
    """A manifest, index or config is not valid."""


class LayerError(FormatError):
    """A layer (tar, gzip, zstd) is corrupt or hostile."""


class LayoutError(FormatError):
    """An OCI layout directory or an image archive is not valid."""


class NotFound(KiloboxError):
    """An image, tag, blob, file or container does not exist."""


class RegistryError(KiloboxError):
    """A registry refused a request. ``codes`` holds the spec's error codes."""

    def __init__(self, message: str, *, hint: str | None = None,
                 status: int | None = None, codes: tuple[str, ...] = (),
                 retryable: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.codes = codes
        self.retryable = retryable


class AuthError(RegistryError):
    """Credentials are missing or were refused."""


class StoreError(KiloboxError):
    """The local content store failed."""


class BuildError(KiloboxError):
    """A build failed: kilobox.toml, compiler, ELF checks, assembly."""


class BudgetExceeded(BuildError):
    """The built image is larger than its size budget."""


class RunError(KiloboxError):
    """Running a container failed, or its state is inconsistent."""


class AuditError(KiloboxError):
    """Audit, SBOM, diff or slim could not be completed."""


class PolicyViolation(KiloboxError):
    """A policy gate failed (``--fail-on``, ``--policy``, slim verification)."""


class ToolMissing(KiloboxError):
    """An external program kilobox needs is not installed."""

    def __init__(self, tool: str, package: str | None = None) -> None:
        hint = f"install it: apt-get install -y {package}" if package else None
        super().__init__(f"{tool} is not installed", hint=hint)
        self.tool = tool
        self.package = package


__all__ = [
    "KiloboxError", "UsageError", "ReferenceError_", "FormatError", "DigestMismatch",
    "ManifestError", "LayerError", "LayoutError", "NotFound", "RegistryError",
    "AuthError", "StoreError", "BuildError", "BudgetExceeded", "RunError",
    "AuditError", "PolicyViolation", "ToolMissing",
]
