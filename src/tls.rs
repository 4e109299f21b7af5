//! The TLS provider of every HTTPS client hawser makes (registries, notification targets):
//! rustls with ring, installed once for the process before the first client is built.

/// Installs ring as the process's rustls provider; later calls do nothing.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
