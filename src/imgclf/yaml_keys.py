"""A YAML loader that refuses a key given twice in one mapping: safe_load kept the last, so a pasted `lr: 0.5`
under `lr: 0.01` in a --config file trained at 0.5 without a word. Read through `io.read_yaml`."""

from __future__ import annotations

from typing import Any

import yaml

_MERGE = "tag:yaml.org,2002:merge"  # `<<:` merges may repeat keys by design


class UniqueKeyLoader(yaml.SafeLoader):
    """safe_load's loader, raising yaml.constructor.ConstructorError (a yaml.YAMLError, with the key's line) on a
    repeated key."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the settings' own check refuses it
                continue
            if repeated:
                raise yaml.constructor.ConstructorError(None, None, f"found the key {key!r} twice", key_node.start_mark)
        return super().construct_mapping(node, deep)
