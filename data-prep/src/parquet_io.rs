//! Parquet reading and writing shared by every table: zstd compression, atomic writes
//! (temporary file, then rename) and typed column access with errors naming the file.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, BooleanArray, Float32Array, Float32Builder, Float64Array, Int64Array, ListArray, ListBuilder, RecordBatch, StringArray, StringBuilder, UInt32Array,
    UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{DataError, Result};
use crate::fsutil::atomic_write_with;

pub use arrow::array::ArrayRef;

/// Writes `columns` as one Parquet file, atomically.
pub fn write(path: &Path, columns: Vec<(&str, ArrayRef)>) -> Result<()> {
    let fields: Vec<Field> =
        columns.iter().map(|(name, array)| Field::new(*name, array.data_type().clone(), array.null_count() > 0 || is_nullable_hint(name))).collect();
    let schema = Arc::new(Schema::new(fields));
    let batch =
        RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).map_err(|source| DataError::Arrow { path: path.into(), source })?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(|source| DataError::Parquet { path: path.into(), source })?))
        .build();
    atomic_write_with(path, |file| {
        let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|source| DataError::Parquet { path: path.into(), source })?;
        writer.write(&batch).map_err(|source| DataError::Parquet { path: path.into(), source })?;
        writer.close().map_err(|source| DataError::Parquet { path: path.into(), source })?;
        Ok(())
    })
}

/// Columns that may hold nulls keep a nullable schema even when a file happens to have none,
/// so every file of one table has the same schema.
fn is_nullable_hint(name: &str) -> bool {
    matches!(name, "year" | "description" | "rating" | "review" | "age" | "gender" | "occupation" | "location" | "ground_truth")
}

/// A whole Parquet file read into memory, with typed access to its columns by name.
pub struct Table {
    path: std::path::PathBuf,
    batch: RecordBatch,
}

impl Table {
    pub fn read(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| DataError::Parquet { path: path.into(), source })?;
        let schema = builder.schema().clone();
        let reader = builder.with_batch_size(1 << 16).build().map_err(|source| DataError::Parquet { path: path.into(), source })?;
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|source| DataError::Arrow { path: path.into(), source })?;
        let batch = arrow::compute::concat_batches(&schema, &batches).map_err(|source| DataError::Arrow { path: path.into(), source })?;
        Ok(Self { path: path.into(), batch })
    }

    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// Whether the table has a column of that name (an optional one, added in a later version).
    pub fn has_column(&self, name: &str) -> bool {
        self.batch.column_by_name(name).is_some()
    }

    fn column<T: 'static>(&self, name: &str, expected: &str) -> Result<&T> {
        let column = self.batch.column_by_name(name).ok_or_else(|| DataError::MissingColumn { path: self.path.clone(), column: name.into() })?;
        column
            .as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| DataError::invalid(&self.path, format!("column `{name}` should be {expected}, found {}", column.data_type())))
    }

    /// A column that may not hold nulls: a null would otherwise read as 0 (user 0, item 0).
    fn required<T: Array + 'static>(&self, name: &str, expected: &str) -> Result<&T> {
        let column = self.column::<T>(name, expected)?;
        match column.nulls().and_then(|n| (0..n.len()).find(|&i| n.is_null(i))) {
            Some(row) => Err(DataError::invalid(&self.path, format!("record {row}: column `{name}` is null; it must hold a value in every record"))),
            None => Ok(column),
        }
    }

    pub fn u32s(&self, name: &str) -> Result<Vec<u32>> {
        Ok(self.required::<UInt32Array>(name, "u32")?.values().to_vec())
    }

    pub fn i64s(&self, name: &str) -> Result<Vec<i64>> {
        Ok(self.required::<Int64Array>(name, "i64")?.values().to_vec())
    }

    pub fn f64s(&self, name: &str) -> Result<Vec<f64>> {
        Ok(self.required::<Float64Array>(name, "f64")?.values().to_vec())
    }

    pub fn bools(&self, name: &str) -> Result<Vec<bool>> {
        Ok(self.column::<BooleanArray>(name, "bool")?.iter().map(Option::unwrap_or_default).collect())
    }

    pub fn opt_f32s(&self, name: &str) -> Result<Vec<Option<f32>>> {
        Ok(self.column::<Float32Array>(name, "f32")?.iter().collect())
    }

    pub fn opt_u32s(&self, name: &str) -> Result<Vec<Option<u32>>> {
        Ok(self.column::<UInt32Array>(name, "u32")?.iter().collect())
    }

    pub fn opt_strings(&self, name: &str) -> Result<Vec<Option<String>>> {
        Ok(self.column::<StringArray>(name, "utf8")?.iter().map(|s| s.map(str::to_owned)).collect())
    }

    pub fn strings(&self, name: &str) -> Result<Vec<String>> {
        Ok(self.opt_strings(name)?.into_iter().map(Option::unwrap_or_default).collect())
    }

    pub fn string_lists(&self, name: &str) -> Result<Vec<Vec<String>>> {
        let list = self.column::<ListArray>(name, "list<utf8>")?;
        (0..list.len())
            .map(|i| {
                let values = list.value(i);
                let strings = values
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| DataError::invalid(&self.path, format!("column `{name}` should hold utf8 values")))?;
                Ok(strings.iter().map(|s| s.unwrap_or_default().to_owned()).collect())
            })
            .collect()
    }

    pub fn f32_lists(&self, name: &str) -> Result<Vec<Vec<f32>>> {
        let list = self.column::<ListArray>(name, "list<f32>")?;
        (0..list.len())
            .map(|i| {
                let values = list.value(i);
                let floats = values
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .ok_or_else(|| DataError::invalid(&self.path, format!("column `{name}` should hold f32 values")))?;
                Ok(floats.values().to_vec())
            })
            .collect()
    }

    pub fn u32_lists(&self, name: &str) -> Result<Vec<Vec<u32>>> {
        let list = self.column::<ListArray>(name, "list<u32>")?;
        (0..list.len())
            .map(|i| {
                let values = list.value(i);
                let ids = values
                    .as_any()
                    .downcast_ref::<UInt32Array>()
                    .ok_or_else(|| DataError::invalid(&self.path, format!("column `{name}` should hold u32 values")))?;
                Ok(ids.values().to_vec())
            })
            .collect()
    }
}

// Builders for the column types the tables use.

pub fn u32_col(values: impl IntoIterator<Item = u32>) -> ArrayRef {
    Arc::new(UInt32Array::from_iter_values(values))
}

pub fn opt_u32_col(values: impl IntoIterator<Item = Option<u32>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<UInt32Array>())
}

pub fn i64_col(values: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values))
}

pub fn f64_col(values: impl IntoIterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(values))
}

pub fn bool_col(values: impl IntoIterator<Item = bool>) -> ArrayRef {
    Arc::new(values.into_iter().map(Some).collect::<BooleanArray>())
}

pub fn opt_f32_col(values: impl IntoIterator<Item = Option<f32>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Float32Array>())
}

pub fn str_col<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

pub fn opt_str_col<S: AsRef<str>>(values: impl IntoIterator<Item = Option<S>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

pub fn str_list_col<'a, L, S>(lists: L) -> ArrayRef
where
    L: IntoIterator<Item = &'a [S]>,
    S: AsRef<str> + 'a,
{
    let mut builder = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new("item", DataType::Utf8, false)));
    for list in lists {
        for s in list {
            builder.values().append_value(s.as_ref());
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
}

pub fn u32_list_col<'a>(lists: impl IntoIterator<Item = &'a [u32]>) -> ArrayRef {
    let mut builder = ListBuilder::new(UInt32Builder::new()).with_field(Arc::new(Field::new("item", DataType::UInt32, false)));
    for list in lists {
        builder.values().append_slice(list);
        builder.append(true);
    }
    Arc::new(builder.finish())
}

pub fn f32_list_col<'a>(lists: impl IntoIterator<Item = &'a [f32]>) -> ArrayRef {
    let mut builder = ListBuilder::new(Float32Builder::new()).with_field(Arc::new(Field::new("item", DataType::Float32, false)));
    for list in lists {
        builder.values().append_slice(list);
        builder.append(true);
    }
    Arc::new(builder.finish())
}
