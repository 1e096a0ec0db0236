"""ray_config.yaml against the JSON schema that Ray ships for cluster-launcher configs, plus the promises its
comments make (token auth, dashboard on localhost, GPU and CPU worker types that autoscale, project install)."""
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((ROOT / "ray_config.yaml").read_text())


def test_ray_config_validates_against_rays_schema(config):
    import ray.autoscaler
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)   # raises with the offending path on error
    typo = json.loads(json.dumps(config))
    typo["available_node_types"]["gpu_worker"]["max_wrkers"] = 8
    with pytest.raises(jsonschema.ValidationError, match="max_wrkers"):   # the check is not vacuous
        jsonschema.validate(typo, schema)


def test_ray_config_shape(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    gpu = [t for n, t in types.items() if t["resources"].get("GPU", 0) > 0]
    cpu = [t for n, t in types.items() if n != config["head_node_type"] and not t["resources"].get("GPU")]
    assert gpu and cpu
    assert all(t["min_workers"] == 0 and t["max_workers"] > 0 for t in gpu + cpu)   # autoscaling
    starts = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in starts and "RAY_AUTH_MODE=token" in starts
    assert "RAY_AUTH_MODE=token" in " ".join(config["worker_start_ray_commands"])
    assert "~/.ray/auth_token" in config["file_mounts"]
    assert any("pip install" in c and "htmc-sweep" in c for c in config["setup_commands"])
    # a multi-node cluster must not pin Ray to loopback
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in yaml.safe_dump(config)
