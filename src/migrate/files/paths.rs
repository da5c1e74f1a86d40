//! Storage paths as a migration accepts them: plain relative paths under the site root, none
//! inside another.

use super::FilesError;

/// Checks that each path is a plain relative path and that no path lies inside another.
pub(super) fn validate_paths(paths: &[String]) -> Result<(), FilesError> {
    for path in paths {
        validate_path(path).map_err(|reason| FilesError::InvalidPath {
            path: path.clone(),
            reason,
        })?;
    }
    for (index, path) in paths.iter().enumerate() {
        let nested = paths[index + 1..]
            .iter()
            .any(|other| contains(path, other) || contains(other, path));
        if nested {
            return Err(FilesError::InvalidPath {
                path: path.clone(),
                reason: "it overlaps another storage path",
            });
        }
    }
    Ok(())
}

fn contains(outer: &str, inner: &str) -> bool {
    inner == outer || inner.starts_with(&format!("{outer}/"))
}

fn validate_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() || path.starts_with('/') {
        return Err("it must be a non-empty path relative to the site root");
    }
    if path.bytes().any(|byte| byte == 0 || byte == b'\n') {
        return Err("it contains a NUL byte or a newline");
    }
    if path.split('/').any(|part| matches!(part, "" | "." | "..")) {
        return Err("it has an empty, `.` or `..` component");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_paths_stay_relative_and_apart() {
        let paths =
            |list: &[&str]| validate_paths(&list.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        assert!(paths(&["shared/storage/app/public", "shared/uploads"]).is_ok());
        assert!(paths(&["/etc"]).is_err());
        assert!(paths(&["shared/../.."]).is_err());
        assert!(paths(&["shared//x"]).is_err());
        assert!(paths(&["a\nb"]).is_err());
        assert!(paths(&["shared", "shared/storage"]).is_err());
        assert!(paths(&["shared/storage", "shared/storage-old"]).is_ok());
    }
}
