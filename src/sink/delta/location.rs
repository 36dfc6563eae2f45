//! Where a table lives and how to reach it: its URL under the warehouse root and the
//! object-store settings (endpoint, region, credentials) the warehouse configuration gives.
//! Every table pixlake opens goes through a [`Location`], local disk and S3 alike.

use std::collections::HashMap;
use std::sync::{Arc, Once};

use deltalake::{DeltaTableBuilder, DeltaTableError};
use url::Url;

use super::SinkError;
use crate::config::WarehouseConfig;

/// A table's URL and the storage settings to open it with. Cheap to clone; its `Debug` shows
/// the URL only (the settings hold credentials).
#[derive(Clone)]
pub struct Location {
    url: Url,
    options: Arc<HashMap<String, String>>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.url.as_str())
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// delta-rs learns the `s3://` scheme when its S3 handlers are registered (a process-wide
/// registry of its own); done once, before the first remote table is opened.
static S3_HANDLERS: Once = Once::new();

impl Location {
    /// Table `table` under the warehouse root (a local directory is created if missing, as the
    /// first commit would).
    pub fn in_warehouse(warehouse: &WarehouseConfig, table: &str) -> Result<Location, SinkError> {
        Self::at(warehouse, &warehouse.table_location(table), table)
    }

    /// The warehouse root itself (for the readiness listing).
    pub fn warehouse_root(warehouse: &WarehouseConfig) -> Result<Location, SinkError> {
        Self::at(warehouse, &warehouse.root, &warehouse.root)
    }

    fn at(warehouse: &WarehouseConfig, place: &str, name: &str) -> Result<Location, SinkError> {
        S3_HANDLERS.call_once(|| deltalake::aws::register_handlers(None));
        let url = deltalake::ensure_table_uri(place).map_err(SinkError::delta(name, "prepare the location of"))?;
        let options = warehouse.storage.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(Location { url, options: Arc::new(options) })
    }

    /// A location with no storage settings (a local path or URL, in tests and tools).
    pub fn from_url(url: Url) -> Location {
        S3_HANDLERS.call_once(|| deltalake::aws::register_handlers(None));
        Location { url, options: Arc::default() }
    }

    /// The table's URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// A builder for the table here, with the storage settings (nothing is read yet).
    pub fn builder(&self) -> Result<DeltaTableBuilder, DeltaTableError> {
        Ok(DeltaTableBuilder::from_url(self.url.clone())?.with_storage_options((*self.options).clone()))
    }
}
