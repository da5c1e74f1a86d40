//! Reading files and writing them atomically, each in one round trip, on any [`Transport`].

use sha2::{Digest, Sha256};

use super::quote::{Command, IdentifierKind, validate_identifier};
use super::{Stdin, Transport, TransportError};

/// What [`Transport::write_file_atomic`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The file already had this content, owner, group and mode: nothing was touched.
    Unchanged,
    /// The content was already right; owner, group or mode were corrected in place.
    AttributesUpdated,
    /// New content was written (temporary file, fsync, rename).
    Written,
}

impl WriteOutcome {
    /// Whether new content was written.
    pub fn wrote(self) -> bool {
        self == Self::Written
    }

    /// Whether anything on the server changed.
    pub fn changed(self) -> bool {
        self != Self::Unchanged
    }
}

/// Owner, group and permission bits of a file to write.
pub(super) struct Attributes<'a> {
    pub(super) owner: &'a str,
    pub(super) group: &'a str,
    pub(super) mode: u32,
}

/// Exit status the read script uses for "nothing at this path"; `cat` itself exits with 1.
const ABSENT: u32 = 3;

const READ_SCRIPT: &str = r#"if [ -f "$1" ]; then exec cat -- "$1"; fi
if [ -e "$1" ] || [ -L "$1" ]; then echo "not a regular file" >&2; exit 1; fi
exit 3"#;

/// Compares hashes first so an identical file costs no write, then writes through a
/// temporary file in the same directory. Arguments: path, owner, group, octal mode, sha256.
const WRITE_SCRIPT: &str = r#"set -eu
target=$1 owner=$2 group=$3 mode=$4 want=$5
if [ -f "$target" ] && [ ! -L "$target" ]; then
  have=$(sha256sum < "$target")
  if [ "${have%% *}" = "$want" ]; then
    cat > /dev/null
    if [ "$(stat -c %U:%G:%a -- "$target")" = "$owner:$group:$mode" ]; then
      echo unchanged
    else
      chown -- "$owner:$group" "$target"
      chmod -- "$mode" "$target"
      echo attributes
    fi
    exit 0
  fi
fi
dir=$(dirname -- "$target")
tmp=$(mktemp -- "$dir/.siteward.XXXXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
got=$(sha256sum < "$tmp")
if [ "${got%% *}" != "$want" ]; then
  echo "the content received does not match its sha256" >&2
  exit 1
fi
chown -- "$owner:$group" "$tmp"
chmod -- "$mode" "$tmp"
sync -- "$tmp"
mv -f -- "$tmp" "$target"
trap - EXIT
sync -- "$dir"
echo written"#;

pub(super) async fn read_file<T>(
    transport: &T,
    path: &str,
) -> Result<Option<Vec<u8>>, TransportError>
where
    T: Transport + ?Sized,
{
    let command = Command::script(READ_SCRIPT).arg(path).render()?;
    let output = transport.exec(&command, Stdin::Empty).await?;
    match output.status {
        0 if output.signal.is_none() => Ok(Some(output.stdout)),
        ABSENT => Ok(None),
        status => Err(TransportError::Failed {
            what: format!("reading `{path}`"),
            endpoint: transport.endpoint().to_owned(),
            status,
            stderr: output.stderr_lossy(),
        }),
    }
}

pub(super) async fn write_file_atomic<T>(
    transport: &T,
    path: &str,
    contents: &[u8],
    attributes: Attributes<'_>,
) -> Result<WriteOutcome, TransportError>
where
    T: Transport + ?Sized,
{
    let command = write_command(path, contents, &attributes)?;
    let what = || format!("writing `{path}`");
    let output = transport
        .exec_checked(&what(), &command, Stdin::Bytes(contents))
        .await?;
    match output.stdout_lossy().trim() {
        "unchanged" => Ok(WriteOutcome::Unchanged),
        "attributes" => Ok(WriteOutcome::AttributesUpdated),
        "written" => Ok(WriteOutcome::Written),
        answer => Err(TransportError::UnexpectedAnswer {
            what: what(),
            endpoint: transport.endpoint().to_owned(),
            answer: answer.to_owned(),
        }),
    }
}

fn write_command(
    path: &str,
    contents: &[u8],
    attributes: &Attributes<'_>,
) -> Result<String, TransportError> {
    validate_identifier(IdentifierKind::User, attributes.owner)?;
    validate_identifier(IdentifierKind::Group, attributes.group)?;
    if attributes.mode > 0o7777 {
        return Err(TransportError::InvalidMode {
            mode: attributes.mode,
        });
    }
    let command = Command::script(WRITE_SCRIPT)
        .arg(path)
        .arg(attributes.owner)
        .arg(attributes.group)
        .arg(format!("{:o}", attributes.mode))
        .arg(hex::encode(Sha256::digest(contents)));
    Ok(command.render()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(owner: &str, mode: u32) -> Attributes<'_> {
        Attributes {
            owner,
            group: "root",
            mode,
        }
    }

    #[test]
    fn write_command_refuses_owners_off_the_allow_list() {
        let error = write_command("/x", b"", &attributes("root;id", 0o644)).unwrap_err();
        assert!(error.to_string().contains("invalid user name"), "{error}");
    }

    #[test]
    fn write_command_refuses_modes_beyond_permission_bits() {
        let error = write_command("/x", b"", &attributes("root", 0o10000)).unwrap_err();
        assert!(
            matches!(error, TransportError::InvalidMode { mode: 0o10000 }),
            "{error}"
        );
    }

    #[test]
    fn write_command_passes_mode_in_octal_and_the_content_hash() {
        let command =
            write_command("/etc/x y", b"hello\n", &attributes("www-data", 0o640)).unwrap();
        let expected_tail = "siteward '/etc/x y' www-data root 640 \
            5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        assert!(command.ends_with(expected_tail), "{command}");
    }
}
