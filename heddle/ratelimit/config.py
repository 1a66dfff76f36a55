"""Loading envoyproxy/ratelimit's YAML configuration: a directory of files, one domain a
document, validated as upstream validates it, with each error naming file:line and a fix.

The checks are upstream's (src/config/config_impl.go): only known keys, lists of mappings,
a non-empty domain and descriptor key, a valid unit unless `unlimited` (and none with it),
no duplicate composite key, `replaces` neither empty nor naming its own limit,
`share_threshold` only on wildcard values, and each domain in one file unless domains are
merged. Beyond upstream, which reads only a file's first document, every document of a file
is a domain of its own.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from heddle.api.diagnostics import Diagnostic, Severity, SourcePosition
from heddle.api.yaml_documents import PathKey, YamlDocument, read_documents
from heddle.ratelimit.model import DescriptorNode, RateLimit, RateLimitConfig, Wildcard
from heddle.ratelimit.units import Unit

VALID_KEYS = frozenset({
    "domain", "key", "value", "descriptors", "rate_limit", "unit", "requests_per_unit",
    "unlimited", "shadow_mode", "quota_mode", "name", "replaces", "detailed_metric",
    "value_to_metric", "share_threshold", "metadata",
})
MAX_REQUESTS_PER_UNIT = 2**32 - 1  # requests_per_unit is a uint32 in the RLS proto
CONFIG_SUFFIXES = (".yaml", ".yml")


class ConfigError(ValueError):
    """One or more files are invalid; each diagnostic names file:line:column and a fix."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics


class _Invalid(Exception):
    def __init__(self, path: PathKey, message: str, fix: str) -> None:
        super().__init__(message)
        self.path, self.message, self.fix = path, message, fix


def config_files(directory: Path) -> list[Path]:
    """The YAML files under `directory`, in name order (the order domains merge in).

    Hidden files and folders are skipped: editors' swap files, and the `..data` folder a
    Kubernetes ConfigMap volume links its files through (the links themselves are read)."""
    found = [p for p in directory.rglob("*")
             if p.suffix in CONFIG_SUFFIXES and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(directory).parts)]
    return sorted(found)


def load_directory(directory: Path, merge_domains: bool = False) -> RateLimitConfig:
    """Every file under `directory` as one configuration, or ConfigError with all of
    the files' errors (each file stops at its first, as upstream's loader does)."""
    sources = []
    for path in config_files(directory):
        try:
            sources.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError([Diagnostic(Severity.ERROR, f"cannot read the file: {err}",
                                          SourcePosition(str(path), 1, 1),
                                          fix="make it a readable UTF-8 file")]) from err
    return load_texts(sources, merge_domains)


def load_texts(sources: Iterable[tuple[str, str]], merge_domains: bool = False
               ) -> RateLimitConfig:
    """(file name, text) pairs as one configuration; see `load_directory`."""
    domains: dict[str, DescriptorNode] = {}
    defined_in: dict[str, SourcePosition] = {}
    errors: list[Diagnostic] = []
    files = []
    for file, text in sources:
        files.append(file)
        documents, syntax = read_documents(text, file)
        if syntax:
            errors.extend(syntax)
            continue
        for document in documents:
            try:
                _load_document(document, domains, defined_in, merge_domains)
            except _Invalid as invalid:
                errors.append(Diagnostic(Severity.ERROR, invalid.message,
                                         document.position(invalid.path), fix=invalid.fix))
                break
    if errors:
        raise ConfigError(errors)
    return RateLimitConfig(domains, tuple(files))


def _load_document(document: YamlDocument, domains: dict[str, DescriptorNode],
                   defined_in: dict[str, SourcePosition], merge_domains: bool) -> None:
    body = document.body
    if not isinstance(body, dict):
        raise _Invalid((), "a rate-limit config file must be a mapping",
                       "write `domain: NAME` and `descriptors: [...]` at the top level")
    _check_keys(body, ())
    domain = _string(body, "domain", ())
    if not domain:
        raise _Invalid(("domain",) if "domain" in body else (),
                       "config file cannot have empty domain",
                       "add `domain: NAME`, the domain Envoy's rate_limit filter sends")
    descriptors = _list(body, "descriptors", ())
    root = domains.get(domain)
    if root is not None:
        if not merge_domains:
            raise _Invalid(("domain",), f"duplicate domain '{domain}' in config file "
                           f"(first defined at {defined_in[domain]})",
                           "define each domain in one file, or start the service with "
                           "--merge-domains to merge files that share a domain")
    else:
        root = domains[domain] = DescriptorNode(position=document.position(("domain",)))
        defined_in[domain] = document.position(("domain",))
    _load_descriptors(document, root, domain + ".", descriptors, ("descriptors",))


def _check_keys(value: Any, path: PathKey) -> None:
    """Only upstream's keys, and only mappings in lists; metadata's contents are free."""
    if isinstance(value, dict):
        for key, child in value.items():
            if key not in VALID_KEYS and _is_number(key):
                raise _Invalid((*path, key), f"config error, key is not of type string: {key}",
                               "keys are field names such as `domain`; quote a number "
                               "meant as text")
            if key not in VALID_KEYS:
                near = difflib.get_close_matches(key, sorted(VALID_KEYS), n=1)
                raise _Invalid((*path, key), f"config error, unknown key '{key}'",
                               f"did you mean '{near[0]}'?" if near
                               else "remove it; valid keys: " + ", ".join(sorted(VALID_KEYS)))
            if key != "metadata":
                _check_keys(child, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise _Invalid((*path, index), "config error, yaml file contains list of "
                               f"type other than map: {item!r}",
                               "write each list item as a mapping: `- key: NAME`")
            _check_keys(item, (*path, index))


def _load_descriptors(document: YamlDocument, parent: DescriptorNode, parent_key: str,
                      descriptors: list[dict[str, Any]], path: PathKey) -> None:
    for index, config in enumerate(descriptors):
        here = (*path, index)
        key = _string(config, "key", here)
        if not key:
            raise _Invalid(here, "descriptor has empty key",
                           "give every descriptor a `key`, the key of the entry Envoy sends")
        value = _string(config, "value", here)
        final_key = f"{key}_{value}" if value else key
        full_key = parent_key + final_key
        if final_key in parent.children:
            raise _Invalid(here, f"duplicate descriptor composite key '{full_key}'",
                           "merge the two descriptors, or give them different values")
        limit = _rate_limit(config, full_key, here)
        share_threshold = _bool(config, "share_threshold", here)
        if share_threshold and "*" not in final_key:
            raise _Invalid((*here, "share_threshold"), "share_threshold can only be used with "
                           f"wildcard values (containing '*'), but found key '{final_key}'",
                           "give the descriptor a wildcard value such as `files/*`, or "
                           "remove share_threshold")
        if "*" in final_key:
            parent.wildcards.append(Wildcard(final_key, tuple(final_key.split("*"))))
        if "metadata" in config and not isinstance(config["metadata"], dict | None):
            raise _Invalid((*here, "metadata"), "error parsing metadata: not a mapping",
                           "write metadata as a mapping")
        node = DescriptorNode(
            limit=limit, value_to_metric=_bool(config, "value_to_metric", here),
            share_threshold=share_threshold, wildcard_value=value if share_threshold else "",
            position=document.position(here))
        _load_descriptors(document, node, full_key + ".",
                          _list(config, "descriptors", here), (*here, "descriptors"))
        parent.children[final_key] = node


def _rate_limit(config: dict[str, Any], full_key: str, path: PathKey) -> RateLimit | None:
    if config.get("rate_limit") is None:
        return None
    here = (*path, "rate_limit")
    spec = config["rate_limit"]
    if not isinstance(spec, dict):
        raise _Invalid(here, "rate_limit must be a mapping",
                       "write `rate_limit: {unit: minute, requests_per_unit: 10}`")
    unlimited = _bool(spec, "unlimited", here)
    unit_text = _string(spec, "unit", here)
    unit = Unit.parse(unit_text)
    if unlimited and unit is not None:
        raise _Invalid((*here, "unit"), "should not specify rate limit unit when unlimited",
                       "remove `unit` and `requests_per_unit`, or remove `unlimited`")
    if not unlimited and unit is None:
        raise _Invalid((*here, "unit") if "unit" in spec else here,
                       f"invalid rate limit unit '{unit_text}'",
                       "use one of: " + ", ".join(u.name.lower() for u in Unit))
    requests = spec.get("requests_per_unit", 0)
    if requests is None:
        requests = 0
    if isinstance(requests, bool) or not isinstance(requests, int) or not (
            0 <= requests <= MAX_REQUESTS_PER_UNIT):
        raise _Invalid((*here, "requests_per_unit"),
                       f"requests_per_unit must be a whole number from 0 to "
                       f"{MAX_REQUESTS_PER_UNIT}, not {requests!r}", "write a count such as 10")
    name = _string(spec, "name", here)
    replaces = []
    for index, entry in enumerate(_list(spec, "replaces", here)):
        replaced = _string(entry, "name", (*here, "replaces", index))
        if not replaced:
            raise _Invalid((*here, "replaces", index), "should not have an empty replaces entry",
                           "name the limit this one replaces: `- name: OTHER`")
        if replaced == name:
            raise _Invalid((*here, "replaces", index),
                           "replaces should not contain name of same descriptor",
                           "a limit cannot replace itself: name another limit")
        replaces.append(replaced)
    return RateLimit(requests, unit, full_key, name=name, replaces=tuple(replaces),
                     unlimited=unlimited, shadow_mode=_bool(config, "shadow_mode", path),
                     quota_mode=_bool(config, "quota_mode", path),
                     detailed_metric=_bool(config, "detailed_metric", path))


def _string(config: dict[str, Any], key: str, path: PathKey) -> str:
    """A string field; numbers and booleans read as their text, as upstream's YAML
    decoder reads them into strings."""
    value = config.get(key)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise _Invalid((*path, key), f"{key} must be a string, not a {type(value).__name__}",
                   f"write `{key}: TEXT`")


def _bool(config: dict[str, Any], key: str, path: PathKey) -> bool:
    value = config.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    raise _Invalid((*path, key), f"{key} must be true or false, not {value!r}",
                   f"write `{key}: true` or remove it")


def _list(config: dict[str, Any], key: str, path: PathKey) -> list[dict[str, Any]]:
    value = config.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid((*path, key), f"{key} must be a list", f"write `{key}:` as a list "
                       "of mappings: `- key: NAME`")
    return value



def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
