//! Human units in deployment files: sizes (`512MiB`, `1GB`, `1048576`) and CPU (`2`, `0.5`,
//! `500m`).

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

const SIZE_UNITS: [(&str, u64); 9] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

/// A number of bytes, written with a unit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Size(pub u64);

impl Size {
    /// Parses `512MiB`, `1 GB`, `4096` or `4096B`.
    pub fn parse(s: &str) -> Result<Size, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let unit = unit.trim();
        let number: u64 = number
            .parse()
            .map_err(|_| format!("{s:?} is not a size like 512MiB"))?;
        let factor = if unit.is_empty() {
            1
        } else {
            SIZE_UNITS.iter().find(|(u, _)| *u == unit).map(|(_, f)| *f).ok_or_else(|| {
                format!("unknown unit {unit:?} in {s:?}: use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB")
            })?
        };
        number
            .checked_mul(factor)
            .map(Size)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl core::fmt::Display for Size {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (unit, factor) in SIZE_UNITS.iter().take(4) {
            if self.0 != 0 && self.0.is_multiple_of(*factor) {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a size such as 512MiB, 10GB or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                Size::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A CPU amount in thousandths of a vCPU, written `2`, `0.5` or `500m`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cpu(pub u32);

impl Cpu {
    fn from_f64(v: f64) -> Result<Cpu, String> {
        let millis = v * 1000.0;
        if !millis.is_finite() || millis < 0.0 || millis > f64::from(u32::MAX) {
            return Err(format!("{v} is not a CPU amount"));
        }
        if millis.fract() != 0.0 {
            return Err(format!(
                "{v}: CPU is counted in thousandths (e.g. 0.125 or 125m)"
            ));
        }
        Ok(Cpu(millis as u32))
    }

    /// Parses `2`, `0.5` or `500m`.
    pub fn parse(s: &str) -> Result<Cpu, String> {
        let s = s.trim();
        if let Some(millis) = s.strip_suffix('m') {
            return millis
                .parse()
                .map(Cpu)
                .map_err(|_| format!("{s:?} is not a CPU amount like 2, 0.5 or 500m"));
        }
        let v: f64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a CPU amount like 2, 0.5 or 500m"))?;
        Cpu::from_f64(v)
    }
}

impl Serialize for Cpu {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(1000) {
            s.serialize_u32(self.0 / 1000)
        } else {
            s.collect_str(&format_args!("{}m", self.0))
        }
    }
}

impl<'de> Deserialize<'de> for Cpu {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cpu, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Cpu;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a CPU amount such as 2, 0.5 or 500m")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cpu, E> {
                v.checked_mul(1000)
                    .and_then(|m| u32::try_from(m).ok())
                    .map(Cpu)
                    .ok_or_else(|| E::custom(format!("{v} CPUs is too many")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cpu, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("a CPU amount cannot be negative"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cpu, E> {
                Cpu::from_f64(v).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cpu, E> {
                Cpu::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(Size::parse("512MiB"), Ok(Size(512 << 20)));
        assert_eq!(Size::parse("1 GB"), Ok(Size(1_000_000_000)));
        assert_eq!(Size::parse("4096"), Ok(Size(4096)));
        assert!(Size::parse("12 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(Size::parse("99999999TiB")
            .unwrap_err()
            .contains("too large"));
        assert_eq!(Size(512 << 20).to_string(), "512MiB");
        assert_eq!(Size(1_000_000_000).to_string(), "1000000000B");
        assert_eq!(Size(3 << 40).to_string(), "3TiB");
    }

    #[test]
    fn cpu_parses_whole_fractional_and_millis() {
        assert_eq!(Cpu::parse("2"), Ok(Cpu(2000)));
        assert_eq!(Cpu::parse("0.5"), Ok(Cpu(500)));
        assert_eq!(Cpu::parse("250m"), Ok(Cpu(250)));
        assert!(Cpu::parse("0.0001").is_err());
        assert!(Cpu::parse("lots").is_err());
    }
}
