"""TLS material for the simulator: a throwaway trustme CA and a server certificate signed by it."""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import weakref
from dataclasses import dataclass

import trustme


@dataclass
class TlsMaterial:
    """Server SSL context plus the CA PEM on disk (in a private temp dir)."""

    context: ssl.SSLContext
    cacert: str
    directory: str

    @classmethod
    def create(cls, hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")) -> TlsMaterial:
        ca = trustme.CA(organization_name="rxibkr simulator")
        identities = list(dict.fromkeys(h for h in hosts if h and h not in ("0.0.0.0", "::")))
        cert = ca.issue_cert(*identities, common_name="localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        directory = tempfile.mkdtemp(prefix="rxibkr-sim-")
        path = os.path.join(directory, "cacert.pem")
        ca.cert_pem.write_to_path(path)
        material = cls(context=context, cacert=path, directory=directory)
        # if stop() is never called, the directory still goes away at interpreter exit
        weakref.finalize(material, shutil.rmtree, directory, True)
        return material

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
