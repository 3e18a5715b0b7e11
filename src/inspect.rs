//! `fakopp checkpoint inspect FILE`: a readable listing of an HDF5 file's
//! groups, datasets (shape, type) and attributes.

use anyhow::{Context, Result};
use std::fmt::Write;
use std::path::Path;

pub fn describe(path: &Path) -> Result<String> {
    let file = hdf5::File::open(path)
        .with_context(|| format!("cannot open {} as HDF5", path.display()))?;
    let mut out = String::new();
    writeln!(out, "{}", path.display())?;
    walk(&file, "/", 0, &mut out)?;
    Ok(out)
}

fn attrs(loc: &hdf5::Location, depth: usize, out: &mut String) -> Result<()> {
    for name in loc.attr_names()? {
        let a = loc.attr(&name)?;
        let td = a.dtype()?.to_descriptor()?;
        let val = match td {
            hdf5::types::TypeDescriptor::VarLenUnicode => a
                .read_scalar::<hdf5::types::VarLenUnicode>()
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default(),
            hdf5::types::TypeDescriptor::Integer(_) if a.is_scalar() => a
                .read_scalar::<i64>()
                .map(|v| v.to_string())
                .unwrap_or_default(),
            hdf5::types::TypeDescriptor::Unsigned(_) if a.is_scalar() => a
                .read_scalar::<u64>()
                .map(|v| v.to_string())
                .unwrap_or_default(),
            hdf5::types::TypeDescriptor::Float(_) if a.is_scalar() => a
                .read_scalar::<f64>()
                .map(|v| v.to_string())
                .unwrap_or_default(),
            other => format!("<{other}, shape {:?}>", a.shape()),
        };
        writeln!(out, "{:indent$}@{name} = {val}", "", indent = depth * 2)?;
    }
    Ok(())
}

fn walk(group: &hdf5::Group, name: &str, depth: usize, out: &mut String) -> Result<()> {
    writeln!(out, "{:indent$}{name}/", "", indent = depth * 2)?;
    attrs(group, depth + 1, out)?;
    for member in group.member_names()? {
        if let Ok(g) = group.group(&member) {
            walk(&g, &member, depth + 1, out)?;
        } else if let Ok(ds) = group.dataset(&member) {
            let td = ds
                .dtype()?
                .to_descriptor()
                .map(|t| t.to_string())
                .unwrap_or_else(|_| "?".into());
            writeln!(
                out,
                "{:indent$}{member}  {td} {:?}",
                "",
                ds.shape(),
                indent = (depth + 1) * 2
            )?;
            attrs(&ds, depth + 2, out)?;
        }
    }
    Ok(())
}
