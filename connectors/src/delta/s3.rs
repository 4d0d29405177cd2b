//! `s3://` Delta tables.
//!
//! deltalake finds the object store and the log store of a table by its URL
//! scheme in two registries. It is built here without its AWS crate (which
//! brings the whole AWS SDK, for DynamoDB locking), so nothing is
//! registered for `s3://` until this module registers its own: the object
//! store is the one checkpoints use (`runnel_state::remote::s3_store`,
//! configured by the table's `s3.*` options over the `AWS_*` environment),
//! and the log store is deltalake's default one. That log store commits a
//! version with a conditional put (`If-None-Match: *`), which S3 and the
//! S3-compatible servers we test with honour, so two writers cannot both
//! commit the same version without DynamoDB.

use std::sync::{Arc, Once};

use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::{
    default_logstore, logstore_factories, object_store_factories, LogStore, LogStoreFactory,
    ObjectStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::{DeltaResult, DeltaTableError};
use url::Url;

/// Registers the `s3://` factories, once per process.
pub(super) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(scheme) = Url::parse("s3://") {
            object_store_factories().insert(scheme.clone(), Arc::new(S3Stores));
            logstore_factories().insert(scheme, Arc::new(S3LogStores));
        }
    });
}

#[derive(Debug)]
struct S3Stores;

impl ObjectStoreFactory for S3Stores {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let bucket = url
            .host_str()
            .ok_or_else(|| DeltaTableError::InvalidTableLocation(url.to_string()))?;
        let options: Vec<(String, String)> =
            config.raw().map(|(k, v)| (k.clone(), v.clone())).collect();
        let store = runnel_state::remote::s3_store(bucket, &options)
            .map_err(|e| DeltaTableError::generic(e.to_string()))?;
        let path =
            Path::from_url_path(url.path()).map_err(|e| DeltaTableError::generic(e.to_string()))?;
        Ok((store, path))
    }
}

#[derive(Debug)]
struct S3LogStores;

impl LogStoreFactory for S3LogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}
