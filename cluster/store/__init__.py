"""The Parquet result store (DESIGN §4): `<results>/sweep=<name>/kind=<kind>/<task_key>.parquet`, on disk or S3.

Modules: schema (the record's columns), layout (paths, key pattern, Parquet bytes), core (StoreConfig, the Store
interface, open_store, load_records), index (the status index), local (LocalStore), s3 (S3Store).
"""
