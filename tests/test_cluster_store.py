"""The Parquet store on disk and on S3 (moto's server on 127.0.0.1): layout, atomic create-once writes, reading
with schema growth, and clear errors for unusable locations. No Ray here."""
import json
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from cluster.store import schema
from cluster.store.core import open_store, StoreConfig
from cluster.store.s3 import S3Store


def rec(key, status="ok", **extra):
    now = datetime.now(timezone.utc)
    return {"task_key": key, "kind_version": "1", "params_json": json.dumps({"x": 1}), "group": "g",
            "status": status, "error": None if status == "ok" else "boom", "attempt": 1, "started_at": now,
            "finished_at": now, "wall_s": 0.5, "num_cpus": 1.0, "num_gpus": 0.5, "cpu_seconds": 0.5,
            "gpu_seconds": 0.25, "batch_size": 1, "x": 1.0, "value": 2.0, **extra}


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(StoreConfig(str(tmp_path / "results")))
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return open_store(StoreConfig(f"s3://{bucket}/some/prefix", endpoint_url=endpoint, region="us-east-1"))


def test_write_read_and_layout(store, tmp_path):
    k1, k2, k3 = "0123456789abcdef", "fedcba9876543210", "00000000000000aa"
    store.check()
    assert store.write_record("sw", "noop", rec(k1))
    assert store.write_record("sw", "noop", rec(k2, "failed"))
    assert store.write_record("sw", "resnet_train", rec(k3, sup_error=0.1, norm_l1=3.5, norm_l1_version="1",
                                                        surprise=[1, 2]))
    assert store.list_keys("sw") == {"noop": sorted([k1, k2]), "resnet_train": [k3]}
    assert store.statuses("sw") == {k1: ("noop", "ok"), k2: ("noop", "failed"), k3: ("resnet_train", "ok")}
    assert store.statuses("other") == {}
    t = store.load("sw", "noop")
    assert t.num_rows == 2 and set(t.column("kind").to_pylist()) == {"noop"}
    assert set(t.column("sweep").to_pylist()) == {"sw"}
    both = store.load("sw")
    assert both.num_rows == 3
    r = store.read_records("sw", "resnet_train", [k3])[k3]
    assert r["norm_l1"] == 3.5 and r["sup_error"] == 0.1 and r["gpu_seconds"] == 0.25
    assert json.loads(r["extra_json"])["surprise"] == [1, 2]      # undeclared values are kept, as JSON
    assert "sweep" not in r and "kind" not in r                         # partition columns only in the path


def test_files_have_no_partition_columns_and_read_as_a_hive_dataset(tmp_path):
    store = open_store(StoreConfig(str(tmp_path / "r")))
    store.write_record("sw", "noop", rec("0123456789abcdef"))
    f = tmp_path / "r" / "sweep=sw" / "kind=noop" / "0123456789abcdef.parquet"
    names = pq.read_schema(f).names
    assert "sweep" not in names and "kind" not in names and names[0] == "task_key"
    t = ds.dataset(tmp_path / "r", format="parquet", partitioning="hive").to_table()
    assert t.num_rows == 1 and t.column("sweep")[0].as_py() == "sw" and t.column("kind")[0].as_py() == "noop"
    assert not any((tmp_path / "r" / "_tmp").iterdir())                 # no temporary files left


def test_ok_is_never_overwritten_and_failed_is_replaced(store):
    k = "0123456789abcdef"
    assert store.write_record("sw", "noop", rec(k, "failed", attempt=1))
    assert store.write_record("sw", "noop", rec(k, "ok", attempt=2))          # a retry replaces a failed record
    assert store.read_records("sw", "noop", [k])[k]["attempt"] == 2
    assert not store.write_record("sw", "noop", rec(k, "ok", attempt=3))      # a second completion is dropped
    assert not store.write_record("sw", "noop", rec(k, "failed", attempt=4))
    r = store.read_records("sw", "noop", [k])[k]
    assert (r["status"], r["attempt"]) == ("ok", 2)
    assert sum(len(v) for v in store.list_keys("sw").values()) == 1


def test_schema_growth_across_versions(tmp_path):
    """An older file lacks a column and has an integer as null; a newer one has a column the schema does not know
    any more. Both load into one table with declared types."""
    root = tmp_path / "r"
    d = root / "sweep=sw" / "kind=resnet_train"
    d.mkdir(parents=True)
    old = pa.table({"task_key": ["00000000000000a1"], "status": ["ok"], "sup_error": [None], "nnz": [None]})
    pq.write_table(old, d / "00000000000000a1.parquet")
    store = open_store(StoreConfig(str(root)))
    store.write_record("sw", "resnet_train", rec("00000000000000a2", sup_error=0.25, nnz=7, norm_new=1.5))
    t = store.load("sw", "resnet_train")
    assert t.num_rows == 2
    assert t.schema.field("sup_error").type == pa.float64() and t.schema.field("nnz").type == pa.int64()
    rows = {r["task_key"]: r for r in t.to_pylist()}
    assert rows["00000000000000a1"]["wall_s"] is None and rows["00000000000000a2"]["nnz"] == 7
    assert rows["00000000000000a2"]["norm_new"] == 1.5


def test_to_table_types_and_rejects_bad_values():
    t = schema.to_table("noop", [rec("0123456789abcdef")])
    assert t.schema.field("started_at").type == schema.TS and t.schema.field("attempt").type == pa.int64()
    with pytest.raises(TypeError, match="attempt"):
        schema.to_table("noop", [rec("0123456789abcdef", attempt=1.5)])


def test_unreachable_endpoint_is_a_clear_error():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    st = open_store(StoreConfig("s3://bucket/x", endpoint_url=f"http://127.0.0.1:{port}"))
    with pytest.raises(ValueError, match=r"unreachable"):
        st.check()


def test_missing_bucket_error_and_creation(s3_endpoint):
    st = S3Store(StoreConfig("s3://htmc-missing-bucket-xyz/p", endpoint_url=s3_endpoint))
    with pytest.raises(ValueError, match="does not exist.*create_bucket"):
        st.check()
    st.check(create_bucket=True)
    st.check()
    assert st.write_record("sw", "noop", rec("0123456789abcdef"))
    assert st.list_keys("sw") == {"noop": ["0123456789abcdef"]}


def test_local_location_that_cannot_be_written(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not writable"):
        open_store(StoreConfig(str(f / "results"))).check()
