"""An operator-wide policy on what monitors may ask for, for clusters that forbid it all:
per-user series (user names and e-mails on /metrics), TLS without verification, and plain
http:// URLs (credentials and tokens in clear on the network)."""

from dataclasses import dataclass

from .config import MonitorSpec
from .errors import CollectionError, Reason


@dataclass(frozen=True)
class SpecPolicy:
    restricted: bool = False

    def violations(self, spec: MonitorSpec) -> list[str]:
        if not self.restricted:
            return []
        found = []
        if spec.per_user.enabled:
            found.append("perUser.enabled")
        if spec.tls.insecure_skip_verify:
            found.append("tls.insecureSkipVerify")
        if spec.url.lower().startswith("http://"):
            found.append("a plain http:// url")
        return found

    def check(self, spec: MonitorSpec) -> None:
        """Raise the refusal a status shows when the spec asks for what the policy forbids."""
        if found := self.violations(spec):
            raise CollectionError(
                Reason.CONFIG,
                f"the operator's restricted policy forbids {', '.join(found)}",
                condition="ForbiddenByPolicy",
            )
