"""Container images: an OCI image layout directory (image-spec image-layout.md: ``oci-layout``, ``index.json``,
``blobs/sha256/``) or a ``docker save`` tarball (``manifest.json`` naming the config and the layer tars; newer
dockers write an OCI layout in the tarball too), unpacked into hermipy's image cache (hermipy/image.py).

Every blob is checked against its digest as it is read, so a corrupt or truncated image is refused; the config's
os/architecture must be linux/amd64; Entrypoint, Cmd, Env, WorkingDir and User become the image's manifest.
"""
import hashlib
import json
import os
import re
import stat
import tarfile

from hermipy.image import (ARCH, ImageError, Tree, _stat_image, apply_checked, apply_layer, check_platform,
                           file_key, new_manifest, store)

DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


class Source:
    """The files of an image: a directory's or a tarball's members, by name."""

    def __init__(self, path: str, st: os.stat_result):
        self.path = path
        self.tar = None
        if not stat.S_ISDIR(st.st_mode):
            try:
                self.tar = tarfile.open(path, "r:*")
            except (tarfile.TarError, EOFError, OSError) as err:
                raise ImageError(f"{path}: not an OCI image layout or docker save tarball ({err})") from None

    def has(self, name: str) -> bool:
        if self.tar is None:
            return os.path.isfile(os.path.join(self.path, name))
        try:
            self.tar.getmember(name)
            return True
        except KeyError:
            return False
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ImageError(f"{self.path}: corrupt or truncated ({err})") from None

    def open(self, name: str):
        if ".." in name.split("/") or name.startswith("/"):
            raise ImageError(f"{self.path}: {name}: a path escaping the image")
        if self.tar is None:
            try:
                return open(os.path.join(self.path, name), "rb")
            except OSError as err:
                raise ImageError(f"{self.path}: {name}: {err.strerror}") from None
        try:
            f = self.tar.extractfile(self.tar.getmember(name))
        except KeyError:
            raise ImageError(f"{self.path}: {name}: missing from the tarball") from None
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ImageError(f"{self.path}: corrupt or truncated ({err})") from None
        if f is None:
            raise ImageError(f"{self.path}: {name}: not a regular file")
        return f

    def json(self, name: str, digest: str | None = None):
        with self.open(name) as f:
            data = f.read()
        if digest is not None and "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise ImageError(f"{self.path}: {name}: corrupt: its sha256 is not {digest}")
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as err:
            raise ImageError(f"{self.path}: {name} does not parse: {err}") from None


def blob(digest) -> str:
    match = DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise ImageError(f"unsupported or malformed digest {digest!r}")
    return f"blobs/sha256/{match.group(1)}"


def _field(obj, key: str, kind, where: str):
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        raise ImageError(f"{where} does not parse: {key!r} missing or of the wrong type")
    return value


def _oci_manifest(src: Source, descriptor: dict, where: str) -> tuple[str, dict]:
    """(digest, manifest) of the linux/amd64 image a descriptor leads to (through image indexes)."""
    digest = _field(descriptor, "digest", str, where)
    doc = src.json(blob(digest), digest)
    if doc.get("mediaType") in INDEX_TYPES or "manifests" in doc and "layers" not in doc:
        return _pick(src, _field(doc, "manifests", list, f"{src.path}: {blob(digest)}"), f"{src.path}: {blob(digest)}")
    return digest, doc


def _pick(src: Source, manifests: list, where: str) -> tuple[str, dict]:
    if not manifests:
        raise ImageError(f"{where}: no image in it")
    platforms = [m.get("platform") for m in manifests if isinstance(m, dict)]
    for m, p in zip(manifests, platforms):
        if not isinstance(p, dict) or (p.get("os"), p.get("architecture")) == ("linux", ARCH):
            return _oci_manifest(src, m, where)
    found = ", ".join(f"{p.get('os')}/{p.get('architecture')}" for p in platforms if isinstance(p, dict))
    raise ImageError(f"{where}: no linux/amd64 image (it has {found}); hermipy runs linux/amd64 (x86-64) only")


def _read(src: Source) -> tuple[dict, list[tuple[str, str | None]], str]:
    """(config, [(layer member, its digest)], content key) of the image."""
    if src.has("index.json"):
        where = f"{src.path}: index.json"
        digest, manifest = _pick(src, _field(src.json("index.json"), "manifests", list, where), where)
        mwhere = f"{src.path}: {blob(digest)}"
        config_digest = _field(_field(manifest, "config", dict, mwhere), "digest", str, mwhere)
        config = src.json(blob(config_digest), config_digest)
        layers = []
        for layer in _field(manifest, "layers", list, mwhere):
            d = _field(layer, "digest", str, mwhere)
            layers.append((blob(d), d))
        return config, layers, DIGEST.fullmatch(digest).group(1)
    if src.has("manifest.json"):
        where = f"{src.path}: manifest.json"
        entries = src.json("manifest.json")
        if not isinstance(entries, list) or not entries:
            raise ImageError(f"{where} does not parse: not a list of images")
        entry = entries[0]
        config_name = _field(entry, "Config", str, where)
        config = src.json(config_name)
        diff_ids = config.get("rootfs", {}).get("diff_ids", []) if isinstance(config, dict) else []
        layers = []
        for i, name in enumerate(_field(entry, "Layers", list, where)):
            named = re.fullmatch(r"blobs/sha256/([0-9a-f]{64})", name) if isinstance(name, str) else None
            digest = f"sha256:{named.group(1)}" if named else (diff_ids[i] if i < len(diff_ids) else None)
            layers.append((name, digest))
        key = hashlib.sha256(json.dumps([config_name, entry.get("Layers")]).encode()).hexdigest()
        return config, layers, key
    raise ImageError(f"{src.path}: not an OCI image layout or docker save tarball (no index.json or manifest.json)")


def unpack_container(path: str) -> str:
    """The cache entry of a container image (unpacked on first use)."""
    st = _stat_image(path)
    src = Source(path, st)
    config, layers, key = _read(src)
    if src.tar is not None:
        key = file_key(path, st)               # a tarball is keyed by its whole content
    if not isinstance(config, dict):
        raise ImageError(f"{path}: the image config does not parse: not a JSON object")
    check_platform(str(config.get("os")), str(config.get("architecture")), path)
    return store(key, lambda tree: _build(src, config, layers, tree))


def _build(src: Source, config: dict, layers: list, tree: Tree) -> dict:
    for i, (name, digest) in enumerate(layers):
        label = f"{src.path}: layer {i + 1} ({name})"
        with src.open(name) as f:
            if digest is not None and (src.tar is None or name.startswith("blobs/") or _plain_tar(f)):
                apply_checked(tree, f, digest, label)
            else:
                apply_layer(tree, f, label)
    c = config.get("config") or {}
    where = f"{src.path}: the image config"

    def strings(key: str) -> list[str]:
        value = c.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ImageError(f"{where} does not parse: {key} must be a list of strings")
        return value
    for key in ("WorkingDir", "User"):
        if not isinstance(c.get(key) or "", str):
            raise ImageError(f"{where} does not parse: {key} must be a string")
    return new_manifest(strings("Entrypoint"), strings("Cmd"), strings("Env"), c.get("WorkingDir") or "/",
                        c.get("User") or "", source=os.path.abspath(src.path))


def _plain_tar(f) -> bool:
    """A docker save layer whose digest to check is the config's diff_id: that of the uncompressed tar."""
    head = f.read(6)
    f.seek(0)
    return not any(head.startswith(m) for m in (b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd"))
