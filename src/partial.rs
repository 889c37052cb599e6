//! Whole-file writes, shared by the server's uploads and the client's
//! downloads: bytes go to a temporary file beside the target, which is
//! renamed over the target only when complete and removed on drop otherwise.

use crate::protocol::TEMP_PREFIX;
use std::fs::Permissions;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tempfile::NamedTempFile;

/// Creates a temporary file in `dir`, named so that servers never list it,
/// with the usual permissions (0666 less the umask) so that the renamed
/// file looks like any other.
pub fn create_in(dir: &Path) -> io::Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)
}
