#!/usr/bin/env python3
"""An independent Ferry release signer, written from docs/release-format.md alone.

It shares no code with ferryctl: Python's standard library for TOML, tar, gzip, JSON and
hashing, and the `cryptography` package for ed25519. The test suite signs a release with it
and installs that release with the real agent.

    ferry_sign.py --key release.key --item web --version 1.0.0 --from DIR --out OUTDIR
"""

import argparse
import base64
import datetime
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import tomllib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PAYLOAD_TYPE = "application/vnd.ferry.manifest.v1+json"


def load_key(path):
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    if doc.get("format") != "ferry-ed25519-private-v1":
        sys.exit(f"{path}: not a Ferry private key file")
    seed = base64.b64decode(doc["secret"], validate=True)
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    keyid = hashlib.sha256(public).digest()[:16].hex()
    if keyid != doc["keyid"]:
        sys.exit(f"{path}: keyid does not match the key")
    return key, keyid


def pae(payload_type, payload):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def rfc3339(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build(args):
    files = []
    tar_bytes = io.BytesIO()
    # A `tar -C DIR .` style archive: a "./" root entry and "./"-prefixed names, which the
    # format allows.
    with tarfile.open(fileobj=tar_bytes, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        root = tarfile.TarInfo("./")
        root.type = tarfile.DIRTYPE
        root.mode = 0o755
        tar.addfile(root)
        for dirpath, dirnames, filenames in sorted(os.walk(args.source)):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, args.source).replace(os.sep, "/")
                with open(full, "rb") as f:
                    content = f.read()
                mode = stat.S_IMODE(os.stat(full).st_mode)
                files.append(
                    {
                        "path": rel,
                        "sha256": hashlib.sha256(content).hexdigest(),
                        "size": len(content),
                        "mode": format(mode, "04o"),
                    }
                )
                info = tarfile.TarInfo("./" + rel)
                info.size = len(content)
                info.mode = mode
                tar.addfile(info, io.BytesIO(content))
    artifact = tar_bytes.getvalue()
    name = f"{args.item}-{args.version}.tar.gz"
    now = datetime.datetime.now(datetime.timezone.utc)
    manifest = {
        "item": args.item,
        "version": args.version,
        "category": "feature",
        "released_at": rfc3339(now),
        "expires_at": rfc3339(now + datetime.timedelta(days=30)),
        "notes": "signed by the independent signer",
        "artifact": {
            "name": name,
            "size": len(artifact),
            "sha256": hashlib.sha256(artifact).hexdigest(),
            "urls": [name],
            "compression": "gzip",
        },
        "files": files,
        "install": {"layout": "symlink", "post_install": ["echo signed elsewhere"]},
    }
    payload = json.dumps(manifest, separators=(",", ":")).encode()
    key, keyid = load_key(args.key)
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode()}],
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, name), "wb") as f:
        f.write(artifact)
    with open(os.path.join(args.out, f"{args.item}-{args.version}.manifest.json"), "w") as f:
        json.dump(envelope, f)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--key", required=True)
    p.add_argument("--item", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--from", dest="source", required=True)
    p.add_argument("--out", required=True)
    build(p.parse_args())


if __name__ == "__main__":
    main()
