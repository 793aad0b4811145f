"""TF_CONFIG read as TensorFlow reads it."""

from __future__ import annotations

import json

import pytest

from kcli.distributed import cluster
from kcli.errors import KcliError


def test_tf_config_is_read_as_tensorflow_does() -> None:
    """The chief is `chief` 0 when there is one, else worker 0; mistakes name TF_CONFIG."""
    two = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    found = cluster.from_env({"TF_CONFIG": json.dumps(two)})
    assert found is not None and found.workers == 2 and not found.is_chief and found.address == "b:2"
    with_chief = {"cluster": {"chief": ["c:3"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}
    assert cluster.parse(with_chief).is_chief and cluster.parse(with_chief).workers == 2
    assert not cluster.parse({**with_chief, "task": {"type": "worker", "index": 0}}).is_chief
    assert cluster.from_env({"TF_CONFIG": " "}) is None
    for raw, message in [({"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}, "host:port"),
                         ({"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}},
                          "parameter servers"),
                         ({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}, "outside"),
                         ({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": True}}, "must name")]:
        with pytest.raises(KcliError, match=message) as caught:
            cluster.parse(raw)
        assert caught.value.key == "TF_CONFIG"
    assert json.loads(cluster.local_config([5, 6], 1))["task"] == {"type": "worker", "index": 1}
