//! Independent readers of the formats other tools read, written from the specifications (the
//! zip application note, NumPy's .npy format 1.0), not from our writers.

use std::collections::BTreeMap;

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) by the table method.
fn crc32(data: &[u8]) -> u32 {
    let table: Vec<u32> = (0..256u32)
        .map(|n| {
            (0..8).fold(n, |c, _| {
                if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                }
            })
        })
        .collect();
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

fn u16_at(b: &[u8], o: usize) -> usize {
    u16::from_le_bytes([b[o], b[o + 1]]) as usize
}

fn u32_at(b: &[u8], o: usize) -> usize {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize
}

/// The members of a stored (uncompressed) zip, found through the end-of-central-directory
/// record and the central directory, each checked against its local header and CRC-32.
pub fn read_zip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let eocd = (0..=bytes.len() - 22)
        .rev()
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .expect("end of central directory record");
    let entries = u16_at(bytes, eocd + 10);
    assert_eq!(u16_at(bytes, eocd + 8), entries, "one disk");
    let (cd_size, mut at) = (u32_at(bytes, eocd + 12), u32_at(bytes, eocd + 16));
    assert_eq!(
        at + cd_size,
        eocd,
        "the central directory ends where the EOCD starts"
    );
    let mut out = BTreeMap::new();
    for _ in 0..entries {
        assert_eq!(
            bytes[at..at + 4],
            [0x50, 0x4b, 0x01, 0x02],
            "central header"
        );
        assert_eq!(u16_at(bytes, at + 10), 0, "method: stored");
        let crc = u32_at(bytes, at + 16) as u32;
        let (csize, usize_) = (u32_at(bytes, at + 20), u32_at(bytes, at + 24));
        assert_eq!(csize, usize_, "stored members are not compressed");
        let (nlen, xlen, clen) = (
            u16_at(bytes, at + 28),
            u16_at(bytes, at + 30),
            u16_at(bytes, at + 32),
        );
        let name = String::from_utf8(bytes[at + 46..at + 46 + nlen].to_vec()).unwrap();
        let local = u32_at(bytes, at + 42);
        assert_eq!(
            bytes[local..local + 4],
            [0x50, 0x4b, 0x03, 0x04],
            "local header"
        );
        assert_eq!(
            u32_at(bytes, local + 14) as u32,
            crc,
            "{name}: local and central CRC"
        );
        let lnlen = u16_at(bytes, local + 26);
        assert_eq!(&bytes[local + 30..local + 30 + lnlen], name.as_bytes());
        let start = local + 30 + lnlen + u16_at(bytes, local + 28);
        let data = bytes[start..start + csize].to_vec();
        assert_eq!(crc32(&data), crc, "{name}: CRC-32 of the data");
        out.insert(name, data);
        at += 46 + nlen + xlen + clen;
    }
    out
}

/// A float32 `.npy` (format 1.0): its shape and values.
pub fn read_npy(b: &[u8]) -> (Vec<usize>, Vec<f32>) {
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00", "magic and version 1.0");
    let hlen = u16_at(b, 8);
    assert_eq!((10 + hlen) % 64, 0, "the header pads the data to 64 bytes");
    let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
    assert!(header.ends_with('\n'));
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_str = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_str
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data = &b[10 + hlen..];
    assert_eq!(data.len(), 4 * shape.iter().product::<usize>(), "data size");
    let values = data
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (shape, values)
}
