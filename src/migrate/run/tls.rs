//! A migration's HTTPS: certbot's lineage of an ACME certificate carried from the source, since
//! the target cannot pass a challenge for a domain that still points at the source.

use super::{MigrationError, Run};
use crate::spec::tls::TlsSource;
use crate::transport::{Command, Stdin, Transport};

const PACK: &str = include_str!("../scripts/lineage_pack.sh");
const UNPACK: &str = include_str!("../scripts/lineage_unpack.sh");

impl<'j, 'a, T: Transport> Run<'j, 'a, T> {
    /// # Guarantees
    /// For a site whose certificate comes from ACME and that the source holds one of: certbot's
    /// lineage (certificate, key, renewal settings and account) goes source → target through
    /// siteward, never through a file or an argument; unpacking it again changes nothing.
    pub(super) async fn carry_certificate(&mut self) -> Result<(), MigrationError> {
        let acme = self
            .job
            .site
            .spec
            .tls
            .as_ref()
            .and_then(|tls| tls.source())
            .is_some_and(|source| matches!(source, TlsSource::Acme(_)));
        if !acme || !self.job.source_site.certificates.contains_key("acme") {
            return Ok(());
        }
        let pack = Command::script(PACK).arg(self.site()).render();
        let unpack = Command::script(UNPACK).render();
        let (source, target) = (&self.job.source, &self.job.target);
        let failed = |what: &'static str, server: &str, error| MigrationError::Transport {
            what,
            server: server.to_owned(),
            source: Box::new(error),
        };
        let pack = pack.map_err(|e| failed("packing the certificate", source.name, e.into()))?;
        let lineage = source
            .transport
            .exec_checked("packing certbot's lineage", &pack, Stdin::Empty)
            .await
            .map_err(|e| failed("packing the certificate", source.name, e))?;
        let unpack =
            unpack.map_err(|e| failed("unpacking the certificate", target.name, e.into()))?;
        target
            .transport
            .exec_checked(
                "unpacking certbot's lineage",
                &unpack,
                Stdin::Bytes(&lineage.stdout),
            )
            .await
            .map_err(|e| failed("unpacking the certificate", target.name, e))?;
        Ok(())
    }
}
