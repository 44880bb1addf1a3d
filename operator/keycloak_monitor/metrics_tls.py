"""HTTPS for the metrics endpoint: a certificate from files (a mounted Secret, e.g. one
cert-manager renews) or a self-signed one made at start."""

import asyncio
import datetime
import ipaddress
import logging
import os
import ssl
from collections.abc import Sequence
from pathlib import Path

SELF_SIGNED_DAYS = 365
RELOAD_EVERY = 30.0  # seconds between looks at the certificate files

log = logging.getLogger(__name__)


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


class CertificateFiles:
    """A server context from certificate files, reloaded when they change: a renewed Secret
    (cert-manager) applies to new connections without a restart."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self.context = server_context(cert_file, key_file)
        self._stamp = self._mtimes()

    def _mtimes(self) -> tuple[int, ...]:
        # The inode too: the kubelet swaps a Secret volume's files in by renaming.
        cert, key = os.stat(self.cert_file), os.stat(self.key_file)
        return cert.st_mtime_ns, cert.st_ino, key.st_mtime_ns, key.st_ino

    def reload_if_changed(self) -> bool:
        try:
            stamp = self._mtimes()
            if stamp == self._stamp:
                return False
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:  # half-written during a renewal: the next look retries
            log.warning("cannot reload the metrics certificate: %s", type(exc).__name__)
            return False
        self._stamp = stamp
        log.info("reloaded the metrics certificate from %s", self.cert_file)
        return True

    async def watch(self, every: float = RELOAD_EVERY) -> None:
        while True:
            await asyncio.sleep(every)
            self.reload_if_changed()


def self_signed_pem(host_names: Sequence[str], addresses: Sequence[str] = ()) -> tuple[bytes, bytes]:
    """(certificate, key) in PEM: a fresh P-256 key, valid a year for these names and addresses."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_names[0])])
    alternatives: list[x509.GeneralName] = [x509.DNSName(n) for n in host_names]
    alternatives += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pkcs8 = serialization.PrivateFormat.PKCS8
    key_pem = key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def self_signed_context(host_names: Sequence[str]) -> ssl.SSLContext:
    """HTTPS with a self-signed certificate. ssl loads only files: they live in anonymous
    memory files, so the key never touches a disk (or a read-only root)."""
    cert_pem, key_pem = self_signed_pem(host_names)
    cert_fd, key_fd = os.memfd_create("tls.crt"), os.memfd_create("tls.key")
    try:
        os.write(cert_fd, cert_pem)
        os.write(key_fd, key_pem)
        return server_context(Path(f"/proc/self/fd/{cert_fd}"), Path(f"/proc/self/fd/{key_fd}"))
    finally:
        os.close(cert_fd)
        os.close(key_fd)
