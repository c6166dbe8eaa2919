"""Content checks that need no context: secrets in text, file capabilities in xattrs."""

from __future__ import annotations

import re

# literal anchors that make a text file worth the secret regexes
_SECRET_ANCHORS = (b"PRIVATE KEY-----", b"AKIA", b"ASIA", b"ghp_", b"github_pat_", b"glpat-",
                   b"xoxb-", b"xoxp-", b"sk_live_", b"aws_secret_access_key", b"AIza")
_SECRET_RES: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("private-key", re.compile(rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----")),
    ("aws-access-key", re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")),
    ("aws-secret-key", re.compile(rb"aws_secret_access_key\s*[=:]\s*\S{20,}")),
    ("github-token", re.compile(rb"\b(?:ghp_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{60,})")),
    ("gitlab-token", re.compile(rb"\bglpat-[A-Za-z0-9_\-]{20}")),
    ("slack-token", re.compile(rb"\bxox[bp]-[A-Za-z0-9-]{10,}")),
    ("stripe-key", re.compile(rb"\bsk_live_[A-Za-z0-9]{20,}")),
    ("google-api-key", re.compile(rb"\bAIza[0-9A-Za-z_\-]{35}")),
)


def scan_secrets(data: bytes) -> tuple[str, ...]:
    """Kinds of secrets found in *data* (cheap literal pre-filter, then regexes)."""
    if not any(a in data for a in _SECRET_ANCHORS):
        return ()
    return tuple(kind for kind, rx in _SECRET_RES if rx.search(data))


# --------------------------------------------------------------------------- capabilities

_CAP_NAMES = ("chown dac_override dac_read_search fowner fsetid kill setgid setuid setpcap "
              "linux_immutable net_bind_service net_broadcast net_admin net_raw ipc_lock ipc_owner "
              "sys_module sys_rawio sys_chroot sys_ptrace sys_pacct sys_admin sys_boot sys_nice "
              "sys_resource sys_time sys_tty_config mknod lease audit_write audit_control setfcap "
              "mac_override mac_admin syslog wake_alarm block_suspend audit_read perfmon bpf "
              "checkpoint_restore").split()


def decode_caps(raw: bytes | str) -> str:
    """``security.capability`` (struct vfs_cap_data) as text, e.g. ``cap_net_raw+ep``."""
    if isinstance(raw, str):
        raw = raw.encode("latin-1", "replace")
    if len(raw) < 12:
        return "invalid"
    magic = int.from_bytes(raw[0:4], "little")
    version, effective = magic & 0xFF000000, magic & 1
    if version not in (0x01000000, 0x02000000, 0x03000000):
        return "invalid"
    permitted = int.from_bytes(raw[4:8], "little")
    inheritable = int.from_bytes(raw[8:12], "little")
    if version != 0x01000000 and len(raw) >= 20:
        permitted |= int.from_bytes(raw[12:16], "little") << 32
        inheritable |= int.from_bytes(raw[16:20], "little") << 32
    names = []
    for bit in range(64):
        p, i = permitted >> bit & 1, inheritable >> bit & 1
        if p or i:
            nm = "cap_" + (_CAP_NAMES[bit] if bit < len(_CAP_NAMES) else str(bit))
            names.append(nm + "+" + ("e" if effective else "") + ("p" if p else "") + ("i" if i else ""))
    return ",".join(names) or "none"


__all__ = ["scan_secrets", "decode_caps"]
