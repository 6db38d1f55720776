//! NumPy `.npy` arrays (float32, C order) and `.npz` archives of them (a stored zip), so a
//! physicist can `np.load("samples.npz")["x"]`. The `npyz` and `zip` crates write the formats.

use std::io::{Cursor, Write};

use npyz::WriterBuilder;
use zip::write::SimpleFileOptions;

/// The `.npy` bytes of a float32 array of the given shape.
pub fn npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "shape does not match the data"
    );
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut out = Vec::with_capacity(128 + 4 * data.len());
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut out)
        .begin_nd()
        .expect("writing to memory cannot fail");
    writer
        .extend(data.iter().copied())
        .expect("writing to memory cannot fail");
    writer.finish().expect("writing to memory cannot fail");
    out
}

/// Building an `.npz` archive failed (in memory: only the zip writer's own limits can).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the .npz archive: {0}")]
pub struct NpzError(#[from] zip::result::ZipError);

/// An uncompressed zip of `name.npy` members: NumPy's `.npz`.
pub fn npz(members: &[(&str, Vec<u8>)]) -> Result<Vec<u8>, NpzError> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in members {
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(data.len() as u64 >= u32::MAX as u64);
        zip.start_file(format!("{name}.npy"), options)?;
        zip.write_all(data).map_err(zip::result::ZipError::from)?;
    }
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_describes_the_array() {
        let b = npy_f32(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(
            header.contains("'shape': (2, 3,") && header.ends_with('\n'),
            "{header}"
        );
        assert_eq!(b.len(), 10 + hlen + 24);
        assert_eq!(
            f32::from_le_bytes(b[10 + hlen + 4..10 + hlen + 8].try_into().unwrap()),
            1.0
        );
        assert!(std::str::from_utf8(&npy_f32(&[3], &[0.0; 3])[10..])
            .unwrap()
            .contains("(3,"));
    }
}
